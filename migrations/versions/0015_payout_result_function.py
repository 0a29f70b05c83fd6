"""payout_apply_success(): a provider's "succeeded" applied to an attempt in one round trip

Revision ID: 0015_payout_result_function
Revises: 0013_ledger_post_lock_by_update

A worker's most common result — the provider paid the newest attempt of a payout that is
``submitting``, with the provider's breaker closed and no failure counted — used to take a
lock statement, the ledger call, three writes (attempt, payout, audit) and their ORM work.
``payout_apply_success()`` does the same steps server-side, in the caller's transaction:

1. locks the payout (``FOR UPDATE``) and checks that the common case holds: the attempt is the
   payout's newest, the payout is ``submitting``, the provider's switchboard row says
   ``closed`` with no failures.  Otherwise it changes nothing and returns NULL: the caller
   runs the full state machine in Python (``portal.services.payouts.apply_result``);
2. the attempt: ``succeeded``, no next check, the provider's reference and words;
3. the payout: ``succeeded``, the fee (the provider's, else the quoted one), finished;
4. the audit record ``payout.succeeded`` (its JSON built by the caller, as ``audit.record``);
5. the posting ``payout:<id>:paid`` through ``ledger_post_named()`` (its arguments built by
   the caller, as ``ledger.post``); a refusal raises (the transaction cannot commit).

Returns the posting's (id, created).  SQLite keeps the Python path.
"""
from alembic import op

revision = "0015_payout_result_function"
down_revision = "0013_ledger_post_lock_by_update"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION payout_apply_success(
    p_attempt_id bigint, p_raw text, p_reference text,
    p_fee bigint,            -- micro-units (as the Money columns), NULL: keep the quoted fee
    p_now timestamptz,
    p_actor text, p_audit_after text,
    -- ledger_post_named()'s arguments after p_created_at
    p_kind text, p_posting_reference text, p_memo text,
    p_names text[], p_currencies text[], p_amounts bigint[], p_guard smallint[],
    p_kinds text[], p_customers integer[], p_new_shards integer,
    OUT posting_id bigint, OUT created boolean
) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_payout integer;
    v_number smallint;
    v_state text;
    v_code text;
    v_newest smallint;
    v_breaker text;
    v_failures integer;
    v_refused integer;
    v_balance bigint;
BEGIN
    SELECT a.payout_id, a.number INTO v_payout, v_number FROM payout_attempt a WHERE a.id = p_attempt_id;
    IF v_payout IS NULL THEN
        RETURN;
    END IF;
    SELECT p.state, p.provider_code INTO v_state, v_code FROM payout p WHERE p.id = v_payout FOR UPDATE;
    SELECT max(a.number) INTO v_newest FROM payout_attempt a WHERE a.payout_id = v_payout;
    SELECT s.breaker, s.consecutive_failures INTO v_breaker, v_failures FROM provider_state s WHERE s.code = v_code;
    IF v_state IS DISTINCT FROM 'submitting' OR v_newest IS DISTINCT FROM v_number
       OR v_breaker IS DISTINCT FROM 'closed' OR v_failures IS DISTINCT FROM 0 THEN
        RETURN;  -- not the common case: nothing written, the caller's Python path decides
    END IF;
    UPDATE payout_attempt SET status = 'succeeded', next_check_at = NULL, error_code = NULL,
           raw_message = left(coalesce(p_raw, ''), 1000),
           provider_reference = coalesce(p_reference, provider_reference), updated_at = p_now
     WHERE id = p_attempt_id;
    UPDATE payout SET state = 'succeeded', fee = coalesce(p_fee, fee), needs_attention = false,
           finished_at = p_now, updated_at = p_now
     WHERE id = v_payout;
    INSERT INTO audit_log (created_at, actor_id, actor, action, object_type, object_id, reason, before, after)
    VALUES (p_now, NULL, p_actor, 'payout.succeeded', 'payout', v_payout::text, NULL,
            '{"state": "submitting"}'::json, p_audit_after::json);
    SELECT l.posting_id, l.created, l.refused_leg, l.refused_balance
      INTO posting_id, created, v_refused, v_balance
      FROM ledger_post_named(p_kind, p_posting_reference, p_actor, p_memo, p_now, p_names, p_currencies,
                             p_amounts, p_guard, p_kinds, p_customers, p_new_shards) l;
    IF v_refused IS NOT NULL THEN
        RAISE EXCEPTION 'payout %: posting % refused (leg %, balance %)', v_payout, p_posting_reference,
            v_refused, v_balance USING ERRCODE = 'check_violation';
    END IF;
END
$fn$;
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS payout_apply_success(bigint, text, text, bigint, timestamptz, text, text, "
                   "text, text, text, text[], text[], bigint[], smallint[], text[], integer[], integer)")
