"""POST /api/v1/network/postback through the Flask test client, against PostgreSQL.

The command behind it (``process_postback``) is tested in ``test_orders.py``; here: the
HTTP contract — raw bytes in, the answer's status and shape out, no login, no CSRF, and
that a refusal leaves exactly one ``postback_rejection`` row and nothing else.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask import request

from portal.extensions import db
from portal.models import Customer, NetworkEvent, Order, PostbackRejection, Posting
from portal.services import clicks, ledger
from portal.services.postback_signing import sign

URL = "/api/v1/network/postback"
SECRET = b"dev-postback-secret"  # config.DEFAULT_POSTBACK_SECRETS (network epn)
LINK = "https://aliexpress.ru/item/1005001234567890.html"
ERROR_KEYS = {"ok", "status", "error", "errors"}


@pytest.fixture
def sub_id(app, customers):
    """A click of customer 1 (rate 7 %)."""
    with app.app_context():
        click = clicks.create_click(db.session, db.session.get(Customer, 1), LINK, "web",
                                    config=dict(app.config)).click
        db.session.commit()
        return click.sub_id


def event(sub_id: str, status: str = "paid", *, event_id: str = "A-1:paid", amount: str = "100.00") -> dict:
    return {"event_id": event_id, "order_id": "A-1", "sub_id": sub_id, "status": status,
            "order_amount": amount, "currency": "USD", "commission": "8.00",
            "event_time": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()}


def signed(body, *, ts: int | None = None, secret: bytes = SECRET, network: str = "epn") -> tuple[bytes, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = sign(secret, raw, int(time.time()) if ts is None else ts)
    headers["X-Cashback-Network"] = network
    headers["Content-Type"] = "application/json"
    return raw, headers


def counts(app) -> dict[str, int]:
    with app.app_context():
        return {model.__name__: db.session.execute(sa.select(sa.func.count()).select_from(model)).scalar_one()
                for model in (NetworkEvent, Posting, Order, PostbackRejection)}


def rejections(app) -> list[tuple[str, int]]:
    with app.app_context():
        return [(r.reason, r.http_status) for r in db.session.execute(
            sa.select(PostbackRejection).order_by(PostbackRejection.id)).scalars()]


def pending(app, customer_id: int = 1) -> Decimal:
    with app.app_context():
        return ledger.customer_balances(db.session, customer_id)["pending"]


def assert_error(response, status: int, code: str) -> dict:
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == ERROR_KEYS
    assert body["ok"] is False and body["status"] == status and body["error"]["code"] == code
    assert body["error"]["message"]
    return body


# --- accepted ------------------------------------------------------------------------------------

def test_signed_event_is_applied_without_login(app, client, sub_id):
    raw, headers = signed(event(sub_id))
    response = client.post(URL, data=raw, headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["ok"] is True and body["outcome"] == "applied" and body["duplicate"] is False
    with app.app_context():
        order = db.session.get(Order, body["order_id"])
        assert (order.customer_id, order.status, order.booked_in) == (1, "paid", "pending")
        assert order.booked_cashback == Decimal("7.00")
    assert pending(app) == Decimal("7.00")
    assert counts(app)["PostbackRejection"] == 0


def test_exact_replay_answers_duplicate_and_moves_nothing(app, client, sub_id):
    raw, headers = signed(event(sub_id))
    first = client.post(URL, data=raw, headers=headers).get_json()
    before = counts(app)
    again = client.post(URL, data=raw, headers=headers)
    assert again.status_code == 200
    assert again.get_json() == {"ok": True, "outcome": "applied", "duplicate": True, "order_id": first["order_id"]}
    assert counts(app) == before
    assert pending(app) == Decimal("7.00")


def test_confirmed_before_paid_ends_available(app, client, sub_id):
    """Out of order: confirmed first books available; the late paid is stale."""
    confirmed = client.post(URL, data=(s := signed(event(sub_id, "confirmed", event_id="A-1:confirmed")))[0],
                            headers=s[1]).get_json()
    late = client.post(URL, data=(s := signed(event(sub_id)))[0], headers=s[1]).get_json()
    assert (confirmed["outcome"], late["outcome"]) == ("applied", "stale")
    with app.app_context():
        assert ledger.customer_balances(db.session, 1)["available"] == Decimal("7.00")
        assert ledger.verify(db.session).ok


def test_unknown_sub_id_is_an_orphan(app, client, customers):
    response = client.post(URL, data=(s := signed(event("no-such-sub")))[0], headers=s[1])
    assert response.status_code == 200 and response.get_json()["outcome"] == "orphan"
    with app.app_context():
        assert db.session.get(Order, response.get_json()["order_id"]).customer_id is None


# --- refused ------------------------------------------------------------------------------------

def _forged(sub_id):
    raw, headers = signed(event(sub_id))
    return raw.replace(b"100.00", b"900.00"), headers


def _wrong_secret(sub_id):
    return signed(event(sub_id), secret=b"not-the-secret")


def _stale(sub_id):
    return signed(event(sub_id), ts=int(time.time()) - 301)


def _future(sub_id):
    return signed(event(sub_id), ts=int(time.time()) + 3600)


def _unsigned(sub_id):
    raw, headers = signed(event(sub_id))
    del headers["X-Cashback-Signature"]
    return raw, headers


def _unknown_network(sub_id):
    return signed(event(sub_id), network="nope")


def _not_json(sub_id):
    return signed(b"{not json")


def _not_utf8(sub_id):
    return signed(b'{"event_id": "\xff"}')


def _invalid_event(sub_id):
    return signed({**event(sub_id), "status": "shipped", "order_amount": "12,50"})


def _oversized(sub_id):
    return signed({**event(sub_id), "padding": "x" * 20000})


@pytest.mark.parametrize("make,status,code", [
    (_forged, 401, "bad_signature"),
    (_wrong_secret, 401, "bad_signature"),
    (_stale, 401, "stale_timestamp"),
    (_future, 401, "stale_timestamp"),
    (_unsigned, 401, "missing_signature"),
    (_unknown_network, 401, "unknown_network"),
    (_not_json, 400, "malformed_body"),
    (_not_utf8, 400, "malformed_body"),
    (_invalid_event, 400, "invalid_event"),
    (_oversized, 413, "body_too_large"),
])
def test_refusals_answer_the_error_shape_log_and_change_nothing(app, client, sub_id, make, status, code):
    before = counts(app)
    raw, headers = make(sub_id)
    assert_error(client.post(URL, data=raw, headers=headers), status, code)
    after = counts(app)
    assert after["PostbackRejection"] == before["PostbackRejection"] + 1
    assert {k: v for k, v in after.items() if k != "PostbackRejection"} == \
        {k: v for k, v in before.items() if k != "PostbackRejection"}
    assert rejections(app) == [(code, status)]
    assert pending(app) == 0


def test_invalid_event_lists_every_bad_field(app, client, sub_id):
    raw, headers = _invalid_event(sub_id)
    body = assert_error(client.post(URL, data=raw, headers={**headers, "Accept-Language": "en"}),
                        400, "invalid_event")
    assert {e["field"] for e in body["errors"]} == {"status", "order_amount"}
    assert all(set(e) == {"field", "code", "message"} for e in body["errors"])


def test_conflicting_replay_is_409_and_keeps_the_first(app, client, sub_id):
    raw, headers = signed(event(sub_id))
    assert client.post(URL, data=raw, headers=headers).status_code == 200
    before = counts(app)
    raw2, headers2 = signed(event(sub_id, amount="5.00"))  # same event id, other data
    assert_error(client.post(URL, data=raw2, headers=headers2), 409, "event_conflict")
    after = counts(app)
    assert after == {**before, "PostbackRejection": before["PostbackRejection"] + 1}
    assert rejections(app) == [("event_conflict", 409)]
    assert pending(app) == Decimal("7.00")


def test_oversized_body_is_not_read_whole(app, client, sub_id):
    """1 MB announced: refused with 413 before the signature is checked; the log keeps the short
    excerpt of unauthenticated refusals (``postbacks.UNAUTHENTICATED_EXCERPT``)."""
    raw, headers = signed(b"{" + b" " * 1_000_000 + b"}")
    assert_error(client.post(URL, data=raw, headers=headers), 413, "body_too_large")
    with app.app_context():
        rejection = db.session.execute(sa.select(PostbackRejection)).scalar_one()
        assert rejection.network == "epn" and len(rejection.body_excerpt) == 256
        assert rejection.ip_hash  # the client address, hashed


def test_body_without_content_length_is_read_bounded(app, client, sub_id):
    """A chunked body (no Content-Length) is still verified byte for byte."""
    raw, headers = signed(event(sub_id))
    response = client.post(URL, input_stream=io.BytesIO(raw), headers=headers,
                           environ_overrides={"wsgi.input_terminated": True})  # as gunicorn sets it
    assert response.status_code == 200, response.get_json()
    assert pending(app) == Decimal("7.00")


def test_get_is_not_allowed(client):
    response = client.get(URL)
    assert response.status_code == 405
    assert set(response.get_json()) == ERROR_KEYS


# --- no CSRF, no login; documented ------------------------------------------------------------------

def test_csrf_protection_does_not_apply(pg_url, app, customers, make_user):
    """With CSRF on (the production setting) a postback needs no token, while a portal form does.

    The app installs no global ``CSRFProtect``: Flask-WTF checks tokens per form.  Should one
    be added, FAB exempts every API blueprint (``BaseApi.csrf_exempt``, kept True here).
    """
    from tests.conftest import build_app

    strict = build_app(pg_url, WTF_CSRF_ENABLED=True)
    assert strict.config["WTF_CSRF_ENABLED"] is True
    with strict.app_context():
        api = next(v for v in strict.appbuilder.baseviews if v.__class__.__name__ == "NetworkPostbackApi")
        assert api.csrf_exempt is True and api.base_permissions == []  # public: no FAB permission
        sub = clicks.create_click(db.session, db.session.get(Customer, 2), LINK, "web",
                                  config=dict(strict.config)).click.sub_id
        db.session.commit()
    raw, headers = signed(event(sub))
    response = strict.test_client().post(URL, data=raw, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert pending(strict, 2) == Decimal("7.00")
    # …while the login form without a token is refused before the view runs (portal-wide CSRF)
    make_user("formuser", "Support")
    refused = strict.test_client().post("/login/", data={"username": "formuser", "password": "pw-" + "x" * 8})
    assert refused.status_code == 400


def test_postbacks_take_the_lean_path(pg_url, app, customers):
    """A postback never runs the portal's page machinery (FAB's user loading, the CSRF hook,
    session cookies) yet keeps its request id and answers; the portal still serves the rest."""
    from tests.conftest import build_app

    portal = build_app(pg_url)
    seen: list[str] = []
    portal.before_request(lambda: seen.append(request.path))
    with portal.app_context():
        sub = clicks.create_click(db.session, db.session.get(Customer, 3), LINK, "web",
                                  config=dict(portal.config)).click.sub_id
        db.session.commit()
    web = portal.test_client()
    web.set_cookie("session", "not-even-a-valid-cookie")
    raw, headers = signed(event(sub))
    response = web.post(URL, data=raw, headers={**headers, "X-Request-ID": "net-42"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["outcome"] == "applied"
    assert response.headers["X-Request-ID"] == "net-42" and "Set-Cookie" not in response.headers
    refused = web.post(URL, data=raw, headers={**headers, "X-Cashback-Signature": "sha256=" + "0" * 64,
                                               "Accept-Language": "en"})
    assert_error(refused, 401, "bad_signature")
    assert refused.get_json()["error"]["message"].isascii()  # English, as asked
    assert seen == []
    assert web.get(URL).status_code == 405 and seen == [URL]  # other methods: the portal
    assert pending(portal, 3) == Decimal("7.00")


def test_the_common_case_is_answered_below_flask_as_the_lean_app_answers(app, client, sub_id):
    """An event the database function applies whole is answered by the dispatcher itself (no
    request context, no hooks): the same status, headers and body bytes as the lean Flask app
    gives; a refusal, a replay with other data and an event handed back reach the lean app."""
    import re

    dispatcher = app.wsgi_app  # portal.api.postback.NetworkDispatcher
    lean = dispatcher.network
    hooked: list[str] = []
    hook = lambda: hooked.append(request.path)  # noqa: E731
    lean.before_request_funcs.setdefault(None, []).append(hook)  # (the app has served requests)
    try:
        raw, headers = signed(event(sub_id))
        fast = client.post(URL, data=raw, headers={**headers, "X-Request-ID": "fast-1"})
        assert hooked == [] and fast.status_code == 200
        raw, headers = signed(event(sub_id, "confirmed", event_id="A-1:confirmed"))
        slow = lean.test_client().post(URL, data=raw, headers={**headers, "X-Request-ID": "slow-1"})
        assert hooked == [URL] and slow.status_code == 200
        assert fast.get_data() == slow.get_data()  # the same order: the same bytes
        assert re.fullmatch(rb'\{"duplicate":false,"ok":true,"order_id":\d+,"outcome":"applied"\}\n', fast.get_data())
        assert fast.headers["Content-Type"] == slow.headers["Content-Type"] == "application/json"
        assert (fast.headers["X-Request-ID"], slow.headers["X-Request-ID"]) == ("fast-1", "slow-1")
        assert re.fullmatch("[0-9a-f]{32}", client.post(URL, data=raw, headers=headers).headers["X-Request-ID"])
        assert len(hooked) == 1  # the replay above was answered below Flask too
        other = signed(event(sub_id, "confirmed", event_id="A-1:confirmed", amount="99.00"))
        assert_error(client.post(URL, data=other[0], headers=other[1]), 409, "event_conflict")
        forged = signed(event(sub_id, event_id="A-1:x"), secret=b"not-the-secret")
        assert_error(client.post(URL, data=forged[0], headers=forged[1]), 401, "bad_signature")
        assert hooked == [URL, URL, URL]
    finally:
        lean.before_request_funcs[None].remove(hook)
    assert counts(app)["Posting"] == 2


def test_openapi_documents_body_and_signing_headers(app, client, make_user):
    from tests.conftest import login

    make_user("docs", "Admin")
    login(client, "docs")
    spec = client.get("/api/v1/_openapi").get_json()
    operation = spec["paths"][URL]["post"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"X-Cashback-Network", "X-Cashback-Timestamp", "X-Cashback-Signature"}
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"event_id", "order_id", "status", "order_amount", "currency", "commission", "event_time"} \
        <= set(schema["required"])
    assert operation["security"] == []
    assert {"200", "400", "401", "409", "413", "422"} <= set(operation["responses"])
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["ok", "status", "error", "errors"]


def test_a_dropped_database_connection_costs_no_event(app, client, sub_id):
    """The lean app's pool does not ping each connection (a round trip per event): when the
    server has dropped its connections (a restart, an idle timeout), the next event still gets
    its 200 on a fresh connection, applied once."""
    raw, headers = signed(event(sub_id))
    assert client.post(URL, data=raw, headers=headers).status_code == 200
    lean = app.wsgi_app.network  # portal.api.postback.NetworkDispatcher
    with lean.app_context():
        engine = db.engine
    assert engine.pool._pre_ping is False
    pooled = engine.raw_connection()  # the connection the event used, back in the pool
    pid = pooled.driver_connection.info.backend_pid
    pooled.close()
    with app.app_context():  # the server drops it (only it: other tests' connections live on)
        assert db.session.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        db.session.commit()
    time.sleep(0.2)
    raw, headers = signed(event(sub_id, "confirmed", event_id="A-1:confirmed"))
    response = client.post(URL, data=raw, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["outcome"] == "applied"
    assert counts(app)["Posting"] == 2


def test_a_refusal_on_a_dropped_connection_is_still_logged(app, client, sub_id):
    """The refusal path (the ORM session on the same pool) meets a dropped connection: the
    postback is handled once more on a fresh one — 401 answered, one rejection logged."""
    raw, headers = signed(event(sub_id))
    assert client.post(URL, data=raw, headers=headers).status_code == 200
    lean = app.wsgi_app.network
    with lean.app_context():
        pids = [db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()]
        db.session.commit()
        db.session.remove()
        pooled = db.engine.raw_connection()
        pids.append(pooled.driver_connection.info.backend_pid)
        pooled.close()
    with app.app_context():
        for pid in set(pids):
            db.session.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        db.session.commit()
    time.sleep(0.2)
    before = counts(app)["PostbackRejection"]
    raw, headers = signed(event(sub_id, event_id="forged"), secret=b"not-the-secret")
    response = client.post(URL, data=raw, headers=headers)
    assert response.status_code == 401, response.get_data(as_text=True)
    assert counts(app)["PostbackRejection"] == before + 1
