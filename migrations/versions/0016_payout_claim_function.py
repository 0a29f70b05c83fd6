"""payout_claim(): a worker claims an approved payout (new attempt, key, audit) in one round trip

Revision ID: 0016_payout_claim_function
Revises: 0015_payout_result_function

``start_attempt`` took a lock statement and three writes (attempt, payout, audit) with their
ORM work for every payout a worker sends.  ``payout_claim()`` does the same in the caller's
transaction (the caller commits before calling the provider: the key is durable first):

1. locks the payout (``FOR UPDATE``): ``missing`` when there is none; ``skipped`` unless it is
   ``approved`` and due (``next_attempt_at``), and its provider may be sent to now: loaded and
   enabled as a plugin (``p_codes``, the caller's list), switched on, breaker closed or its
   pause over;
2. the provider's switchboard row not created yet: changes nothing and returns NULL (the
   Python path creates it: ``portal.services.payouts.start_attempt``);
3. a new attempt ``submitting`` numbered after the newest, its key
   ``cb-<payout>-<number>-<p_token>`` (the caller's random token), the payout ``submitting``,
   the audit record ``payout.submitting``;
4. returns ``claimed`` with what the provider call and the result need (Money in micro-units).

SQLite keeps the Python path.
"""
from alembic import op

revision = "0016_payout_claim_function"
down_revision = "0015_payout_result_function"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION payout_claim(
    p_payout_id integer, p_token text, p_now timestamptz, p_actor text, p_codes text[],
    OUT outcome text, OUT attempt_id bigint, OUT attempt_number smallint, OUT idempotency_key text,
    OUT customer_id integer, OUT provider_code text, OUT account text, OUT amount_usd bigint,
    OUT payout_currency text, OUT payout_amount bigint, OUT fx_rate bigint, OUT fee bigint
) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_state text;
    v_next timestamptz;
    v_enabled boolean;
    v_breaker text;
    v_paused timestamptz;
BEGIN
    SELECT p.state, p.next_attempt_at, p.customer_id, p.provider_code, p.account, p.amount_usd,
           p.payout_currency, p.payout_amount, p.fx_rate, p.fee
      INTO v_state, v_next, customer_id, provider_code, account, amount_usd, payout_currency,
           payout_amount, fx_rate, fee
      FROM payout p WHERE p.id = p_payout_id FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'missing';
        RETURN;
    END IF;
    IF v_state <> 'approved' OR (v_next IS NOT NULL AND v_next > p_now) THEN
        outcome := 'skipped';
        RETURN;
    END IF;
    SELECT s.enabled, s.breaker, s.paused_until INTO v_enabled, v_breaker, v_paused
      FROM provider_state s WHERE s.code = provider_code;
    IF NOT FOUND THEN
        RETURN;  -- outcome NULL: the Python path creates the switchboard row
    END IF;
    IF NOT (provider_code = ANY (p_codes)) OR NOT v_enabled
       OR NOT (v_breaker = 'closed' OR (v_paused IS NOT NULL AND v_paused <= p_now)) THEN
        outcome := 'skipped';
        RETURN;
    END IF;
    SELECT coalesce(max(a.number), 0) + 1 INTO attempt_number FROM payout_attempt a WHERE a.payout_id = p_payout_id;
    idempotency_key := 'cb-' || p_payout_id || '-' || attempt_number || '-' || p_token;
    INSERT INTO payout_attempt (payout_id, number, idempotency_key, status, checks, created_at, updated_at)
    VALUES (p_payout_id, attempt_number, idempotency_key, 'submitting', 0, p_now, p_now)
    RETURNING id INTO attempt_id;
    UPDATE payout SET state = 'submitting', updated_at = p_now WHERE id = p_payout_id;
    INSERT INTO audit_log (created_at, actor_id, actor, action, object_type, object_id, reason, before, after)
    VALUES (p_now, NULL, p_actor, 'payout.submitting', 'payout', p_payout_id::text, NULL,
            json_build_object('state', 'approved'),
            json_build_object('state', 'submitting', 'attempt', attempt_number, 'key', idempotency_key));
    outcome := 'claimed';
END
$fn$;
"""


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS payout_claim(integer, text, timestamptz, text, text[])")
