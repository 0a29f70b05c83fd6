"""apply_order_event(): the network event written once, with its outcome

Revision ID: 0018_order_event_written_once
Revises: 0017_apply_order_event

Issue 13, profiled with every event of the postback bench applied on one connection
(PostgreSQL backend CPU per event): 0017 inserted the event first (``ON CONFLICT DO NOTHING``,
the replay check) and updated it at the end with its outcome and order; ``order_id`` is
indexed, so that update wrote a second row version and an entry in each of the table's four
indexes — 7 % of the function's CPU per event (0.317 -> 0.294 ms).  Now:

1. a replay is found by a look-up and answers what is stored, as before;
5. the event is inserted once, at the end, with its outcome and its order.

Two copies of one event sent at once: both pass the look-up; the second waits on the order
row (or, at the latest, on the first's index entry) and its insert meets the first's event:
``ON CONFLICT DO NOTHING`` inserts nothing, the function raises ``CBF04`` inside its block
(everything it did is undone: a subtransaction) and answers the stored event as a replay — or
``conflict`` when its digest differs.  A new order is inserted with ``RETURNING *`` instead of
being read back.  Everything else is 0017's function, line for line.
"""
from pathlib import Path

from alembic import op

revision = "0018_order_event_written_once"
down_revision = "0017_apply_order_event"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION apply_order_event(
    p_network text, p_event_id text, p_source text, p_order_id text, p_sub_id text, p_status text,
    p_amount bigint, p_currency text, p_commission bigint, p_refunded bigint,  -- micro-units, as reported
    p_event_time timestamptz, p_channel text, p_coupon boolean, p_in_cart boolean,
    p_digest text, p_default_rate bigint, p_actor text, p_now timestamptz, p_hot_shards integer,
    OUT event_row_id bigint, OUT outcome text, OUT order_id integer, OUT duplicate boolean,
    OUT conflict boolean, OUT fallback boolean, OUT posting_kind text, OUT posting_created boolean
) LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_rank_status integer := CASE p_status WHEN 'paid' THEN 1 WHEN 'confirmed' THEN 2 WHEN 'cancelled' THEN 3 END;
    v_digest text;
    v_fx bigint;
    v_amount bigint := p_amount;
    v_commission bigint := p_commission;
    v_refunded bigint := p_refunded;
    v_click record;
    v_created boolean;
    o record;
    v_changed boolean;
    v_stored_rank integer;
    -- what the order should hold, and what it held
    v_where text;
    v_total bigint := 0;
    v_from_promo bigint := 0;
    v_paid bigint;
    v_commission_share bigint;
    v_cap bigint;
    v_pays boolean;
    v_referrer integer;
    d_pending bigint := 0;
    d_available bigint := 0;
    d_receivable bigint := 0;
    v_cur_available bigint := 0;
    v_cur_receivable bigint := 0;
    v_shortfall bigint;
    v_net bigint;
    v_network_delta bigint;
    v_promo_delta bigint;
    v_names text[] := '{}';
    v_kinds text[] := '{}';
    v_amounts bigint[] := '{}';
    v_guard smallint[] := '{}';
    v_customers integer[] := '{}';
    v_posting bigint;
    v_refused integer;
    r record;
BEGIN
    duplicate := false;
    conflict := false;
    fallback := false;
    posting_created := false;
    BEGIN
        -- 1. a replay answers what is stored (the event itself is written once, in 5., with its outcome)
        SELECT e.id, e.outcome, e.order_id, e.digest INTO event_row_id, outcome, order_id, v_digest
          FROM network_event e WHERE e.network = p_network AND e.event_id = p_event_id;
        IF FOUND THEN
            duplicate := true;
            conflict := v_digest <> p_digest;
            RETURN;
        END IF;

        -- 2. RUB to USD at the latest rate on or before the event's day
        IF p_currency <> 'USD' THEN
            SELECT f.rate INTO v_fx FROM fx_rate f
             WHERE f.base = 'USD' AND f.quote = p_currency AND f.day <= (p_event_time AT TIME ZONE 'UTC')::date
             ORDER BY f.day DESC LIMIT 1;
            IF v_fx IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'CBF01';  -- no rate: the Python path says so
            END IF;
            v_amount := cb_div_half_even(p_amount::numeric * 1000000, v_fx);
            v_commission := cb_div_half_even(p_commission::numeric * 1000000, v_fx);
            IF p_refunded IS NOT NULL THEN
                v_refunded := cb_div_half_even(p_refunded::numeric * 1000000, v_fx);
            END IF;
        END IF;

        -- 3. the order: created from the click, or locked
        IF p_sub_id <> '' THEN
            SELECT c.id, c.customer_id, c.rate, c.promo_id INTO v_click FROM click c WHERE c.sub_id = p_sub_id;
        END IF;
        INSERT INTO network_order (network, network_order_id, sub_id, click_id, customer_id, status, amount_usd,
                                   refunded_usd, commission_usd, reported_amount, reported_currency, rate, promo_id,
                                   channel, coupon_used, items_in_cart_before_click, booked_in, booked_cashback,
                                   booked_from_promo, last_event_at, created_at, updated_at)
        VALUES (p_network, p_order_id, p_sub_id, v_click.id, v_click.customer_id,
                CASE WHEN v_rank_status IS NULL THEN 'paid' ELSE p_status END, v_amount,
                0, v_commission, p_amount, p_currency, coalesce(v_click.rate, p_default_rate), v_click.promo_id,
                p_channel, p_coupon, p_in_cart, 'none', 0, 0, p_event_time, p_now, p_now)
        ON CONFLICT (network, network_order_id) DO NOTHING
        RETURNING * INTO o;
        v_created := FOUND;
        IF NOT v_created THEN
            SELECT * INTO o FROM network_order n
             WHERE n.network = p_network AND n.network_order_id = p_order_id FOR UPDATE;
        END IF;

        -- the event moves the order forward (orders._apply)
        v_changed := v_created;
        IF NOT v_created AND p_event_time >= coalesce(o.last_event_at, p_event_time) THEN
            IF o.amount_usd <> v_amount OR o.commission_usd <> v_commission THEN
                o.amount_usd := v_amount;
                o.commission_usd := v_commission;
                o.reported_amount := p_amount;
                o.reported_currency := p_currency;
                v_changed := true;
            END IF;
            o.last_event_at := p_event_time;
        END IF;
        IF p_channel IS NOT NULL AND p_channel <> '' AND (o.channel IS NULL OR o.channel = '') THEN
            o.channel := p_channel;
        END IF;
        IF p_coupon AND NOT o.coupon_used THEN
            o.coupon_used := true;
            v_changed := true;
        END IF;
        IF p_in_cart AND NOT o.items_in_cart_before_click THEN
            o.items_in_cart_before_click := true;
            v_changed := true;
        END IF;
        IF v_refunded IS NOT NULL AND v_refunded > o.refunded_usd THEN
            o.refunded_usd := least(v_refunded, o.amount_usd);
            v_changed := true;
        END IF;
        v_stored_rank := CASE o.status WHEN 'paid' THEN 1 WHEN 'confirmed' THEN 2 WHEN 'cancelled' THEN 3 END;
        IF v_rank_status IS NOT NULL AND v_rank_status > v_stored_rank THEN
            o.status := p_status;
            v_changed := true;
        END IF;
        IF p_status = 'paid' AND o.paid_at IS NULL THEN
            o.paid_at := p_event_time;
        ELSIF p_status = 'confirmed' AND o.confirmed_at IS NULL THEN
            o.confirmed_at := p_event_time;
        ELSIF p_status = 'cancelled' AND o.cancelled_at IS NULL THEN
            o.cancelled_at := p_event_time;
        END IF;
        IF o.paid_at IS NULL AND o.status IN ('confirmed', 'cancelled') THEN
            o.paid_at := p_event_time;
        END IF;
        outcome := CASE WHEN o.customer_id IS NULL THEN 'orphan' WHEN v_changed THEN 'applied' ELSE 'stale' END;

        -- 4. the cashback it should hold (orders._target, orders.cashback_for)
        IF o.customer_id IS NULL OR o.status = 'cancelled' THEN
            v_where := 'none';
        ELSE
            v_where := CASE o.status WHEN 'paid' THEN 'pending' ELSE 'available' END;
            v_paid := o.amount_usd - o.refunded_usd;
            IF v_paid > 0 AND o.amount_usd > 0 THEN
                v_total := cb_div_half_even(v_paid::numeric * o.rate, 100000000);
                IF o.promo_id IS NOT NULL THEN
                    SELECT p.cap_usd, p.pays_difference INTO v_cap, v_pays FROM promo p WHERE p.id = o.promo_id;
                END IF;
                IF v_cap IS NOT NULL THEN
                    v_total := least(v_total, v_cap);
                END IF;
                v_commission_share := cb_div_half_even(o.commission_usd::numeric * v_paid, o.amount_usd);
                IF v_total > v_commission_share THEN
                    IF coalesce(v_pays, false) THEN
                        v_from_promo := v_total - v_commission_share;
                    ELSE
                        v_total := v_commission_share;
                    END IF;
                END IF;
            END IF;
        END IF;

        -- ... against what the ledger holds (orders.sync_cashback)
        IF (v_where, v_total, v_from_promo) IS DISTINCT FROM (o.booked_in, o.booked_cashback, o.booked_from_promo) THEN
            SELECT c.referred_by_id INTO v_referrer FROM customer c WHERE c.id = o.customer_id;
            IF v_referrer IS NOT NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'CBF02';  -- the referral reward follows: the Python path
            END IF;
            IF o.booked_in = 'pending' THEN d_pending := d_pending - o.booked_cashback;
            ELSIF o.booked_in = 'available' THEN d_available := d_available - o.booked_cashback;
            END IF;
            IF v_where = 'pending' THEN d_pending := d_pending + v_total;
            ELSIF v_where = 'available' THEN d_available := d_available + v_total;
            END IF;
            IF d_available <> 0 THEN
                -- the customer's balance rows, locked in the ledger's order (account id)
                FOR r IN SELECT a.kind, b.balance FROM ledger_account a
                           JOIN ledger_balance b ON b.account_id = a.id
                          WHERE a.customer_id = o.customer_id AND a.currency = 'USD'
                          ORDER BY a.id FOR UPDATE OF b LOOP
                    IF r.kind = 'available' THEN v_cur_available := r.balance;
                    ELSIF r.kind = 'receivable' THEN v_cur_receivable := -r.balance;  -- debit-normal
                    END IF;
                END LOOP;
                IF d_available < 0 AND v_cur_available + d_available < 0 THEN
                    v_shortfall := -(v_cur_available + d_available);
                    d_available := d_available + v_shortfall;
                    d_receivable := -v_shortfall;
                ELSIF d_available > 0 AND v_cur_receivable > 0 THEN
                    v_net := least(v_cur_receivable, d_available);
                    d_available := d_available - v_net;
                    d_receivable := v_net;
                END IF;
            END IF;
            v_network_delta := (v_total - v_from_promo) - (o.booked_cashback - o.booked_from_promo);
            v_promo_delta := v_from_promo - o.booked_from_promo;
            FOR r IN SELECT * FROM (VALUES (1, 'pending', d_pending, 1), (2, 'available', d_available, 1),
                                           (3, 'receivable', d_receivable, -1)) AS l(i, k, m, g)
                      WHERE l.m <> 0 ORDER BY l.i LOOP
                v_names := v_names || ('customer:' || o.customer_id || ':' || r.k);
                v_kinds := v_kinds || r.k::text;
                v_amounts := v_amounts || r.m::bigint;
                v_guard := v_guard || r.g::smallint;
                v_customers := v_customers || o.customer_id;
            END LOOP;
            IF v_network_delta <> 0 THEN
                v_names := v_names || 'network_receivable'::text;
                v_kinds := v_kinds || 'network_receivable'::text;
                v_amounts := v_amounts || (-v_network_delta);
                v_guard := v_guard || 0::smallint;
                v_customers := v_customers || NULL::integer;
            END IF;
            IF v_promo_delta <> 0 THEN
                v_names := v_names || 'promo_expense'::text;
                v_kinds := v_kinds || 'promo_expense'::text;
                v_amounts := v_amounts || (-v_promo_delta);
                v_guard := v_guard || 0::smallint;
                v_customers := v_customers || NULL::integer;
            END IF;
            IF cardinality(v_names) >= 2 THEN
                posting_kind := 'cashback.' || CASE WHEN v_where = 'none' THEN 'reversed' ELSE v_where END;
                SELECT l.posting_id, l.created, l.refused_leg INTO v_posting, posting_created, v_refused
                  FROM ledger_post_named(posting_kind, 'event:' || p_network || ':' || p_event_id, p_actor,
                                         'order ' || p_network || ':' || p_order_id, p_now, v_names,
                                         array_fill('USD'::text, ARRAY[cardinality(v_names)]), v_amounts, v_guard,
                                         v_kinds, v_customers, p_hot_shards) l;
                IF v_refused IS NOT NULL OR NOT posting_created THEN
                    RAISE EXCEPTION USING ERRCODE = 'CBF03';  -- refused or already held: the Python path says so
                END IF;
            END IF;
            o.booked_in := v_where;
            o.booked_cashback := v_total;
            o.booked_from_promo := v_from_promo;
        END IF;

        -- 5. the order's new state, and the event with its outcome
        UPDATE network_order n SET
            status = o.status, amount_usd = o.amount_usd, refunded_usd = o.refunded_usd,
            commission_usd = o.commission_usd, reported_amount = o.reported_amount,
            reported_currency = o.reported_currency, channel = o.channel, coupon_used = o.coupon_used,
            items_in_cart_before_click = o.items_in_cart_before_click, booked_in = o.booked_in,
            booked_cashback = o.booked_cashback, booked_from_promo = o.booked_from_promo,
            paid_at = o.paid_at, confirmed_at = o.confirmed_at, cancelled_at = o.cancelled_at,
            last_event_at = o.last_event_at, updated_at = p_now
         WHERE n.id = o.id
           AND (n.status, n.amount_usd, n.refunded_usd, n.commission_usd, n.reported_amount, n.reported_currency,
                n.channel, n.coupon_used, n.items_in_cart_before_click, n.booked_in, n.booked_cashback,
                n.booked_from_promo, n.paid_at, n.confirmed_at, n.cancelled_at, n.last_event_at)
               IS DISTINCT FROM
               (o.status, o.amount_usd, o.refunded_usd, o.commission_usd, o.reported_amount, o.reported_currency,
                o.channel, o.coupon_used, o.items_in_cart_before_click, o.booked_in, o.booked_cashback,
                o.booked_from_promo, o.paid_at, o.confirmed_at, o.cancelled_at, o.last_event_at);
        INSERT INTO network_event (network, event_id, source, network_order_id, sub_id, status, amount, currency,
                                   commission, refunded_amount, event_time, channel, coupon_used,
                                   items_in_cart_before_click, digest, outcome, order_id, received_at)
        VALUES (p_network, p_event_id, p_source, p_order_id, p_sub_id, p_status, p_amount, p_currency,
                p_commission, p_refunded, p_event_time, p_channel, p_coupon, p_in_cart, p_digest,
                apply_order_event.outcome, o.id, p_now)
        ON CONFLICT (network, event_id) DO NOTHING
        RETURNING id INTO event_row_id;
        IF event_row_id IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'CBF04';  -- a twin committed while this one ran: it answers
        END IF;
        order_id := o.id;
    EXCEPTION WHEN SQLSTATE 'CBF04' THEN
        -- everything above is undone; the twin (this statement's snapshot sees it) is the answer
        SELECT e.id, e.outcome, e.order_id, e.digest INTO event_row_id, outcome, order_id, v_digest
          FROM network_event e WHERE e.network = p_network AND e.event_id = p_event_id;
        duplicate := FOUND;
        conflict := FOUND AND v_digest <> p_digest;
        fallback := NOT FOUND;
        posting_kind := NULL;
        posting_created := false;
    WHEN SQLSTATE 'CBF01' OR SQLSTATE 'CBF02' OR SQLSTATE 'CBF03' THEN
        -- everything above is undone (the block's subtransaction); the caller takes the Python path
        event_row_id := NULL;
        outcome := NULL;
        order_id := NULL;
        posting_kind := NULL;
        posting_created := false;
        fallback := true;
    END;
END
$fn$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("apply_order_event_0017", Path(__file__).with_name("0017_apply_order_event.py"))
    previous = module_from_spec(spec)
    spec.loader.exec_module(previous)
    op.execute(previous.FUNCTION)  # back to 0017's body
