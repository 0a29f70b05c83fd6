"""customer accounts: self-registration, e-mail confirmation, referrals, referral reviews

Revision ID: 0007_accounts
Revises: 0006_claims
Create Date: 2026-11-25 08:40:00.000000

"""
import secrets

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0007_accounts"
down_revision = "0006_claims"
branch_labels = None
depends_on = None

_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def upgrade():
    op.add_column('customer', sa.Column('referral_code', sa.String(length=16), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot ALTER constraints, but a nullable column may carry its REFERENCES.
        op.execute("ALTER TABLE customer ADD COLUMN referred_by_id INTEGER REFERENCES customer (id)")
    else:
        op.add_column('customer', sa.Column('referred_by_id', sa.Integer(), nullable=True))
        op.create_foreign_key('fk_customer_referred_by_id', 'customer', 'customer', ['referred_by_id'], ['id'])
    op.add_column('customer', sa.Column('referral_flag', sa.String(length=200), nullable=True))
    op.add_column('customer', sa.Column('email_confirmed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('customer', sa.Column('registration_fingerprint', sa.String(length=64), nullable=True))
    op.add_column('customer', sa.Column('registration_ip_hash', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_customer_referral_code'), 'customer', ['referral_code'], unique=True)
    op.create_index(op.f('ix_customer_referred_by_id'), 'customer', ['referred_by_id'], unique=False)
    op.create_index(op.f('ix_customer_registration_fingerprint'), 'customer', ['registration_fingerprint'],
                    unique=False)
    op.create_index(op.f('ix_customer_registration_ip_hash'), 'customer', ['registration_ip_hash'], unique=False)

    op.create_table('referral_review',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('referrer_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('resolved_by', sa.String(length=120), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['referrer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_referral_review_customer_id'), 'referral_review', ['customer_id'], unique=False)
    op.create_index(op.f('ix_referral_review_referrer_id'), 'referral_review', ['referrer_id'], unique=False)
    op.create_index('ix_referral_review_state', 'referral_review', ['state', 'created_at'], unique=False)

    # Existing customers get their referral code now (new ones get it on creation or first use).
    conn = op.get_bind()
    ids = [row[0] for row in conn.execute(sa.text("SELECT id FROM customer WHERE referral_code IS NULL"))]
    used = set()
    for customer_id in ids:
        code = "".join(secrets.choice(_ALPHABET) for _ in range(10))
        while code in used:
            code = "".join(secrets.choice(_ALPHABET) for _ in range(10))
        used.add(code)
        conn.execute(sa.text("UPDATE customer SET referral_code = :code WHERE id = :id"),
                     {"code": code, "id": customer_id})


def downgrade():
    op.drop_index('ix_referral_review_state', table_name='referral_review')
    op.drop_index(op.f('ix_referral_review_referrer_id'), table_name='referral_review')
    op.drop_index(op.f('ix_referral_review_customer_id'), table_name='referral_review')
    op.drop_table('referral_review')
    op.drop_index(op.f('ix_customer_registration_ip_hash'), table_name='customer')
    op.drop_index(op.f('ix_customer_registration_fingerprint'), table_name='customer')
    op.drop_index(op.f('ix_customer_referred_by_id'), table_name='customer')
    op.drop_index(op.f('ix_customer_referral_code'), table_name='customer')
    with op.batch_alter_table('customer') as batch:
        batch.drop_column('registration_ip_hash')
        batch.drop_column('registration_fingerprint')
        batch.drop_column('email_confirmed_at')
        batch.drop_column('referral_flag')
        batch.drop_column('referred_by_id')
        batch.drop_column('referral_code')
