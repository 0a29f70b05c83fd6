"""JWTs minted before a customer's last password change or partner link are refused

Revision ID: 0012_customer_tokens_valid_after
Revises: 0011_ledger_post_by_name
Create Date: 2026-12-07 01:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0012_customer_tokens_valid_after"
down_revision = "0011_ledger_post_by_name"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('customer', sa.Column('tokens_valid_after', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('customer') as batch:
        batch.drop_column('tokens_valid_after')
