"""ledger_post(): one posting in one server-side call on PostgreSQL

Revision ID: 0002_ledger_post_function
Revises: 0001_foundation

The function does what ``portal.services.ledger._post_python`` does, in one round trip:
lock the guarded (customer) balance rows in account order, return the existing posting
for a known reference, refuse a guarded balance going below zero, insert the posting and
its entries, and update balance rows — customer rows first, then system shards, each in
ascending (account, shard) order.  SQLite keeps the Python path.
"""
from alembic import op

revision = "0002_ledger_post_function"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION ledger_post(
    p_kind text, p_reference text, p_actor text, p_memo text, p_created_at timestamptz,
    p_accounts integer[], p_amounts bigint[], p_currencies text[], p_shards integer[],
    p_guard smallint[]  -- per leg: 0 not guarded, 1 credit-normal, -1 debit-normal
) RETURNS TABLE (posting_id bigint, created boolean, refused_leg integer, refused_balance bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_id bigint;
    v_refused integer;
    v_refused_balance bigint;
    i integer;
    r record;
BEGIN
    -- 1. lock guarded rows in ascending account id order, noting the first that would go below zero
    FOR r IN
        SELECT b.account_id, b.balance FROM ledger_balance b
         WHERE b.shard = 0
           AND b.account_id IN (SELECT a FROM unnest(p_accounts, p_guard) AS g(a, s) WHERE s <> 0)
         ORDER BY b.account_id FOR UPDATE
    LOOP
        i := array_position(p_accounts, r.account_id);
        IF v_refused IS NULL AND p_guard[i] * p_amounts[i] < 0
           AND p_guard[i] * (r.balance + p_amounts[i]) < 0 THEN
            v_refused := i - 1;
            v_refused_balance := r.balance;
        END IF;
    END LOOP;

    -- 2. known reference: a replay (each statement sees what committed meanwhile)
    SELECT p.id INTO v_id FROM ledger_posting p WHERE p.reference = p_reference;
    IF FOUND THEN
        RETURN QUERY SELECT v_id, false, NULL::integer, NULL::bigint;
        RETURN;
    END IF;

    -- 3. guarded balances may not go below zero
    IF v_refused IS NOT NULL THEN
        RETURN QUERY SELECT NULL::bigint, false, v_refused, v_refused_balance;
        RETURN;
    END IF;

    -- 4. the posting (a twin without locks may have won the race)
    INSERT INTO ledger_posting (kind, reference, actor, memo, created_at)
    VALUES (p_kind, p_reference, p_actor, p_memo, p_created_at)
    ON CONFLICT (reference) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT p.id INTO v_id FROM ledger_posting p WHERE p.reference = p_reference;
        RETURN QUERY SELECT v_id, false, NULL::integer, NULL::bigint;
        RETURN;
    END IF;

    -- 5. entries
    INSERT INTO ledger_entry (posting_id, account_id, amount, currency)
    SELECT v_id, e.a, e.m, e.c FROM unnest(p_accounts, p_amounts, p_currencies) AS e(a, m, c);

    -- 6. balances: guarded rows (locked above) in one statement, then system shards ascending
    UPDATE ledger_balance b SET balance = b.balance + u.m
      FROM unnest(p_accounts, p_amounts, p_guard) AS u(a, m, s)
     WHERE u.s <> 0 AND b.account_id = u.a AND b.shard = 0;
    FOR i IN
        SELECT o FROM unnest(p_accounts, p_guard) WITH ORDINALITY AS u(a, s, o) WHERE u.s = 0 ORDER BY u.a
    LOOP
        UPDATE ledger_balance b SET balance = b.balance + p_amounts[i]
         WHERE b.account_id = p_accounts[i] AND b.shard = (v_id % p_shards[i])::integer;
    END LOOP;

    RETURN QUERY SELECT v_id, true, NULL::integer, NULL::bigint;
END
$fn$;
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_post(text, text, text, text, timestamptz, integer[], "
                   "bigint[], text[], integer[], smallint[])")
