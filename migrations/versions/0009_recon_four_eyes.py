"""reconciliation lines that create or raise cashback are proposed, then approved by a second person

Revision ID: 0009_recon_four_eyes
Revises: 0008_partner_accounts
Create Date: 2026-12-07 00:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0009_recon_four_eyes"
down_revision = "0008_partner_accounts"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('recon_line') as batch:
        batch.add_column(sa.Column('customer_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('raise_usd', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('proposed_by', sa.String(length=120), nullable=True))
        batch.add_column(sa.Column('proposed_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('proposal_reason', sa.Text(), nullable=True))
        batch.add_column(sa.Column('decision', sa.String(length=10), nullable=True))
        batch.add_column(sa.Column('decided_by', sa.String(length=120), nullable=True))
        batch.add_column(sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key('fk_recon_line_customer_id_customer', 'customer', ['customer_id'], ['id'])
        batch.create_index(batch.f('ix_recon_line_customer_id'), ['customer_id'], unique=False)


def downgrade():
    with op.batch_alter_table('recon_line') as batch:
        batch.drop_index(batch.f('ix_recon_line_customer_id'))
        batch.drop_constraint('fk_recon_line_customer_id_customer', type_='foreignkey')
        for name in ('decided_at', 'decided_by', 'decision', 'proposal_reason', 'proposed_at', 'proposed_by',
                     'raise_usd', 'customer_id'):
            batch.drop_column(name)
