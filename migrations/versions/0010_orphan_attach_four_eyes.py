"""attaching an orphan order is proposed by Support and confirmed by Finance

Revision ID: 0010_orphan_attach_four_eyes
Revises: 0009_recon_four_eyes
Create Date: 2026-12-07 01:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0010_orphan_attach_four_eyes"
down_revision = "0009_recon_four_eyes"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('network_order') as batch:
        batch.add_column(sa.Column('attach_customer_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('attach_proposed_by', sa.String(length=120), nullable=True))
        batch.add_column(sa.Column('attach_proposed_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('attach_reason', sa.Text(), nullable=True))
        batch.add_column(sa.Column('attach_confirmed_by', sa.String(length=120), nullable=True))
        batch.add_column(sa.Column('attach_confirmed_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key('fk_network_order_attach_customer_id_customer', 'customer',
                                 ['attach_customer_id'], ['id'])
        batch.create_index(batch.f('ix_network_order_attach_customer_id'), ['attach_customer_id'], unique=False)


def downgrade():
    with op.batch_alter_table('network_order') as batch:
        batch.drop_index(batch.f('ix_network_order_attach_customer_id'))
        batch.drop_constraint('fk_network_order_attach_customer_id_customer', type_='foreignkey')
        for name in ('attach_confirmed_at', 'attach_confirmed_by', 'attach_reason', 'attach_proposed_at',
                     'attach_proposed_by', 'attach_customer_id'):
            batch.drop_column(name)
