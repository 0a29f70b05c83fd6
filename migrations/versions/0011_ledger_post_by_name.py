"""ledger_post_named(): one posting in one round trip, accounts found (or opened) by name

Revision ID: 0011_ledger_post_by_name
Revises: 0010_orphan_attach_four_eyes

``ledger_post()`` (0002) wanted account ids, so each posting first looked its accounts up
(a second round trip and a statement through SQLAlchemy whenever the process had not seen
the account yet: with thousands of customers, most postings).  This function takes the
accounts by (name, currency), finds them with one index join, opens the missing ones with
their balance rows, then does what ``ledger_post()`` does:

1. lock the guarded (customer) balance rows in ascending account id order, noting the first
   leg that would take its balance below zero;
2. a posting with this reference already exists: return it (a replay moves nothing);
3. refuse a guarded balance going below zero;
4. insert the posting (a twin racing without customer locks loses on the unique reference),
   its entries, and update the balance rows: customer rows in one statement (locked in 1),
   then system shards one by one in ascending (account, shard) order.

Steps 2 and 4 share one ``INSERT … ON CONFLICT DO NOTHING`` when nothing was refused (a
known reference then returns the stored posting), so the usual posting probes the reference
index once.  The result comes back as OUT parameters (no result set to materialize).
SQLite keeps the Python path (``portal.services.ledger._post_python``).
"""
from alembic import op

revision = "0011_ledger_post_by_name"
down_revision = "0010_orphan_attach_four_eyes"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION ledger_post_named(
    p_kind text, p_reference text, p_actor text, p_memo text, p_created_at timestamptz,
    p_names text[], p_currencies text[], p_amounts bigint[],
    p_guard smallint[],      -- per leg: 0 system account, 1 credit-normal / -1 debit-normal customer account
    p_kinds text[], p_customers integer[],  -- to open a missing account
    p_new_shards integer,    -- balance rows of a new system account
    OUT posting_id bigint, OUT created boolean, OUT refused_leg integer, OUT refused_balance bigint
) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_ids integer[];
    v_shards integer[];
    v_found integer;
    v_id bigint;
    i integer;
    r record;
BEGIN
    -- 0. the accounts, by (name, currency); open missing ones (a concurrent opener of the same
    --    account makes ON CONFLICT wait for its commit, then the second look finds it)
    SELECT array_agg(a.id ORDER BY u.o), array_agg(a.shards ORDER BY u.o), count(a.id)
      INTO v_ids, v_shards, v_found
      FROM unnest(p_names, p_currencies) WITH ORDINALITY AS u(n, c, o)
      LEFT JOIN ledger_account a ON a.name = u.n AND a.currency = u.c;
    IF v_found < cardinality(p_names) THEN
        WITH opened AS (
            INSERT INTO ledger_account (name, kind, customer_id, currency, shards, created_at)
            SELECT u.n, u.k, u.cu, u.c, CASE WHEN u.g <> 0 THEN 1 ELSE p_new_shards END, p_created_at
              FROM unnest(p_names, p_currencies, p_kinds, p_customers, p_guard) AS u(n, c, k, cu, g)
             ORDER BY u.n, u.c
            ON CONFLICT (name, currency) DO NOTHING
            RETURNING id, shards
        )
        INSERT INTO ledger_balance (account_id, shard, balance)
        SELECT o.id, s, 0 FROM opened o, generate_series(0, o.shards - 1) AS s;
        SELECT array_agg(a.id ORDER BY u.o), array_agg(a.shards ORDER BY u.o)
          INTO v_ids, v_shards
          FROM unnest(p_names, p_currencies) WITH ORDINALITY AS u(n, c, o)
          JOIN ledger_account a ON a.name = u.n AND a.currency = u.c;
    END IF;

    -- 1. lock guarded rows in ascending account id order, noting the first that would go below zero
    FOR r IN
        SELECT b.account_id, b.balance FROM ledger_balance b
         WHERE b.shard = 0
           AND b.account_id IN (SELECT a FROM unnest(v_ids, p_guard) AS g(a, s) WHERE s <> 0)
         ORDER BY b.account_id FOR UPDATE
    LOOP
        i := array_position(v_ids, r.account_id);
        IF refused_leg IS NULL AND p_guard[i] * p_amounts[i] < 0
           AND p_guard[i] * (r.balance + p_amounts[i]) < 0 THEN
            refused_leg := i - 1;
            refused_balance := r.balance;
        END IF;
    END LOOP;

    -- 2./3. a known reference is a replay (each statement sees what committed meanwhile);
    --       otherwise a refusal stands
    IF refused_leg IS NOT NULL THEN
        SELECT p.id INTO v_id FROM ledger_posting p WHERE p.reference = p_reference;
        IF FOUND THEN
            posting_id := v_id; created := false; refused_leg := NULL; refused_balance := NULL;
        ELSE
            created := false;
        END IF;
        RETURN;
    END IF;

    -- 4. the posting (a known reference, or a twin that won the race, inserts nothing)
    INSERT INTO ledger_posting (kind, reference, actor, memo, created_at)
    VALUES (p_kind, p_reference, p_actor, p_memo, p_created_at)
    ON CONFLICT (reference) DO NOTHING
    RETURNING id INTO v_id;
    IF v_id IS NULL THEN
        SELECT p.id INTO posting_id FROM ledger_posting p WHERE p.reference = p_reference;
        created := false;
        RETURN;
    END IF;

    INSERT INTO ledger_entry (posting_id, account_id, amount, currency)
    SELECT v_id, e.a, e.m, e.c FROM unnest(v_ids, p_amounts, p_currencies) AS e(a, m, c);

    -- balances: guarded rows (locked above) in one statement, then system shards ascending
    UPDATE ledger_balance b SET balance = b.balance + u.m
      FROM unnest(v_ids, p_amounts, p_guard) AS u(a, m, s)
     WHERE u.s <> 0 AND b.account_id = u.a AND b.shard = 0;
    IF 0 = ANY(p_guard) THEN
        FOR i IN
            SELECT o FROM unnest(v_ids, p_guard) WITH ORDINALITY AS u(a, s, o) WHERE u.s = 0 ORDER BY u.a
        LOOP
            UPDATE ledger_balance b SET balance = b.balance + p_amounts[i]
             WHERE b.account_id = v_ids[i] AND b.shard = (v_id % v_shards[i])::integer;
        END LOOP;
    END IF;

    posting_id := v_id;
    created := true;
END
$fn$;
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_post_named(text, text, text, text, timestamptz, text[], text[], "
                   "bigint[], smallint[], text[], integer[], integer)")
