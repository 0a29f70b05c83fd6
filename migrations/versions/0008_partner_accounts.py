"""partner-linked customer accounts (CPA-partner login)

Revision ID: 0008_partner_accounts
Revises: 0007_accounts
Create Date: 2026-11-25 08:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0008_partner_accounts"
down_revision = "0007_accounts"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('customer', sa.Column('partner_id', sa.String(length=64), nullable=True))
    op.add_column('customer', sa.Column('partner_linked', sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.add_column('customer', sa.Column('partner_cabinet_url', sa.String(length=300), nullable=True))
    op.create_index(op.f('ix_customer_partner_id'), 'customer', ['partner_id'], unique=True)


def downgrade():
    op.drop_index(op.f('ix_customer_partner_id'), table_name='customer')
    with op.batch_alter_table('customer') as batch:
        batch.drop_column('partner_cabinet_url')
        batch.drop_column('partner_linked')
        batch.drop_column('partner_id')
