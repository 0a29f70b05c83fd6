"""missing-cashback claims and their manual credits

Revision ID: 0006_claims
Revises: 0005_provider_handles
Create Date: 2026-11-25 08:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0006_claims"
down_revision = "0005_provider_handles"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('claim',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('order_number', sa.String(length=80), nullable=False),
    sa.Column('order_date', sa.Date(), nullable=False),
    sa.Column('amount_usd', sa.BigInteger(), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('reason_code', sa.String(length=30), nullable=True),
    sa.Column('verdict', sa.JSON(), nullable=True),
    sa.Column('suggested_reply', sa.Text(), nullable=False),
    sa.Column('reply_sent', sa.Text(), nullable=True),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opened_by', sa.String(length=120), nullable=False),
    sa.Column('channel', sa.String(length=12), nullable=False),
    sa.Column('screenshot', sa.LargeBinary(), nullable=True),
    sa.Column('screenshot_type', sa.String(length=20), nullable=True),
    sa.Column('state_since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_claim_customer_id'), 'claim', ['customer_id'], unique=False)
    op.create_index(op.f('ix_claim_order_number'), 'claim', ['order_number'], unique=False)
    op.create_index('ix_claim_state_since', 'claim', ['state', 'state_since'], unique=False)
    op.create_table('claim_credit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=False),
    sa.Column('amount_usd', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('proposed_by', sa.String(length=120), nullable=False),
    sa.Column('proposed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=120), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.Column('posting_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['claim_id'], ['claim.id'], ),
    sa.ForeignKeyConstraint(['posting_id'], ['ledger_posting.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_claim_credit_claim_id'), 'claim_credit', ['claim_id'], unique=False)
    op.create_index(op.f('ix_claim_credit_state'), 'claim_credit', ['state'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_claim_credit_state'), table_name='claim_credit')
    op.drop_index(op.f('ix_claim_credit_claim_id'), table_name='claim_credit')
    op.drop_table('claim_credit')
    op.drop_index('ix_claim_state_since', table_name='claim')
    op.drop_index(op.f('ix_claim_order_number'), table_name='claim')
    op.drop_index(op.f('ix_claim_customer_id'), table_name='claim')
    op.drop_table('claim')
