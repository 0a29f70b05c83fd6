"""/health, /health/ready and /metrics against real PostgreSQL, Redis and the Test Bank sandbox."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from portal import observability
from portal.models import ProviderState
from portal.services import ledger
from portal.services.ledger import customer_account, system_account, transfer
from tests.conftest import TEST_SETTINGS, login, provider_settings
from tests.integration.test_payouts import SYSTEM, settle, withdraw, world  # noqa: F401 — fixture

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def other_app(pg_url, testbank, **overrides):
    from portal.app import create_app

    return create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": pg_url, "JOBS_MODE": "collect",
                       "PAYOUT_PROVIDER_SETTINGS": provider_settings(testbank), **overrides})


def test_health_is_open_and_tags_the_request(client):
    """Liveness answers without a login; the request id is echoed, or made when absent or odd."""
    response = client.get("/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert len(response.headers["X-Request-ID"]) == 32
    assert client.get("/health", headers={"X-Request-ID": "lb-42.a"}).headers["X-Request-ID"] == "lb-42.a"
    odd = client.get("/health", headers={"X-Request-ID": "x" * 200}).headers["X-Request-ID"]
    assert odd != "x" * 200 and len(odd) == 32


def test_ready_reports_database_and_provider_breakers(app, client, session):
    """Ready with the database up; an open breaker is shown but does not make the app unready."""
    response = client.get("/health/ready")
    report = response.get_json()
    assert response.status_code == 200 and report["status"] == "ready" and report["failing"] == []
    assert report["checks"]["database"] == {"ok": True}
    assert report["checks"]["redis"]["ok"] is True and "skipped" in report["checks"]["redis"]
    assert report["checks"]["providers"]["states"]["test"] == {"enabled": True, "breaker": "closed",
                                                              "available": True}
    session.add(ProviderState(code="test", enabled=True, breaker="open", consecutive_failures=5))
    session.commit()
    report = client.get("/health/ready").get_json()
    assert report["status"] == "ready"
    assert report["checks"]["providers"]["states"]["test"] == {"enabled": True, "breaker": "open",
                                                              "available": False}


def test_ready_with_redis_counts_the_queues(app, pg_url, testbank):
    """With REDIS_URL: PING and the depth of each prefixed queue, in /health/ready and /metrics."""
    from portal.tasks import QUEUES, rq_queue

    prefix = f"test-obs-{uuid.uuid4().hex[:8]}-"
    rq_app = other_app(pg_url, testbank, REDIS_URL=REDIS_URL, QUEUE_PREFIX=prefix)
    queue = rq_queue(rq_app, "default")
    try:
        queue.enqueue("portal.tasks.payouts.janitor")
        queue.enqueue("portal.tasks.payouts.janitor")
        c = rq_app.test_client()
        report = c.get("/health/ready").get_json()
        assert report["checks"]["redis"] == {"ok": True}
        assert report["checks"]["queues"]["depths"] == {name: (2 if name == "default" else 0) for name in QUEUES}
        text = c.get("/metrics").get_data(as_text=True)
        assert 'cashback_queue_depth{queue="default"} 2.0' in text
    finally:
        queue.delete(delete_jobs=True)


def test_unready_names_the_failing_checks_and_leaks_nothing(app, pg_url, testbank):
    """A missing database and an unreachable Redis: 503, both named, no URL or password shown."""
    url = sa.make_url(pg_url).set(password="s3cret-pw-xyz", database="no_such_db_obs").render_as_string(
        hide_password=False)
    broken = other_app(url, testbank, REDIS_URL="redis://:r3dis-pw-xyz@127.0.0.1:1/0")
    response = broken.test_client().get("/health/ready")
    assert response.status_code == 503
    report = response.get_json()
    assert report["status"] == "unready" and report["failing"] == ["database", "redis"]
    body = response.get_data(as_text=True)
    for leak in ("s3cret-pw-xyz", "r3dis-pw-xyz", "no_such_db_obs", "127.0.0.1"):
        assert leak not in body


def test_metrics_loopback_only_without_a_token(app, client):
    """No token: loopback gets the exposition, another address 403."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    assert "cashback_payouts_finished_total" in response.get_data(as_text=True)
    remote = app.test_client()
    remote.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert remote.get("/metrics").status_code == 403


def test_metrics_token(app, pg_url, testbank):
    """With CASHBACK_METRICS_TOKEN: the bearer token from anywhere, nothing without it."""
    secured = other_app(pg_url, testbank, METRICS_TOKEN="scrape-token-123")
    c = secured.test_client()
    c.environ_base["REMOTE_ADDR"] = "198.51.100.8"
    assert c.get("/metrics").status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"}).status_code == 200


@pytest.mark.parametrize("role", [None, "Admin", "Support", "Finance", "Developer"])
def test_role_matrix(app, client, make_user, role):
    """These pages ignore roles: health open to all, /metrics by address/token only (403 remote, even Admin)."""
    if role:
        make_user(f"obs_{role.lower()}", role)
        login(client, f"obs_{role.lower()}")
    assert client.get("/health").status_code == 200
    assert client.get("/health/ready").status_code == 200
    client.environ_base["REMOTE_ADDR"] = "198.51.100.9"
    assert client.get("/metrics").status_code == 403


def test_a_payout_is_counted_timed_and_gauged(app, client, session, world, testbank):
    """A paid withdrawal: final state counted once, submit timed, posting counted, gauge from the DB."""
    finished = sample("cashback_payouts_finished_total", provider="test", state="succeeded")
    calls = sample("cashback_provider_call_seconds_count", provider="test", operation="submit")
    paid = sample("cashback_ledger_postings_total", kind="payout.succeeded")
    payout = settle(session, withdraw(session, app).payout.id)
    assert payout.state == "succeeded"
    assert sample("cashback_payouts_finished_total", provider="test", state="succeeded") == finished + 1
    assert sample("cashback_provider_call_seconds_count", provider="test", operation="submit") == calls + 1
    assert sample("cashback_provider_calls_total", provider="test", operation="submit", status="succeeded") + \
        sample("cashback_provider_calls_total", provider="test", operation="submit", status="accepted") + \
        sample("cashback_provider_calls_total", provider="test", operation="submit", status="pending") >= 1
    assert sample("cashback_ledger_postings_total", kind="payout.succeeded") == paid + 1
    text = client.get("/metrics").get_data(as_text=True)
    assert 'cashback_payouts{state="succeeded"} 1.0' in text


def test_postings_count_on_commit_only(app, session, customers):
    """A rolled-back posting is not counted; a committed one is, once; a replay is not."""
    before = sample("cashback_ledger_postings_total", kind="test.metrics")
    legs = transfer(system_account("network_receivable"), customer_account(1, "available"), Decimal("1.00"))
    ledger.post(session, kind="test.metrics", reference="metrics:1", actor=SYSTEM, legs=legs)
    session.rollback()
    assert sample("cashback_ledger_postings_total", kind="test.metrics") == before
    ledger.post(session, kind="test.metrics", reference="metrics:1", actor=SYSTEM, legs=legs)
    session.commit()
    ledger.post(session, kind="test.metrics", reference="metrics:1", actor=SYSTEM, legs=legs)
    session.commit()
    assert sample("cashback_ledger_postings_total", kind="test.metrics") == before + 1


def test_postback_rejections_are_counted_by_reason(client):
    """A postback from an unknown network is refused and counted under its reason."""
    before = sample("cashback_postback_rejections_total", reason="unknown_network")
    response = client.post("/api/v1/network/postback", data=b"{}", headers={"X-Cashback-Network": "nope"})
    assert response.status_code == 401
    assert sample("cashback_postback_rejections_total", reason="unknown_network") == before + 1


MULTIPROC_SCRIPT = """
import sys
from portal import observability
if sys.argv[1] == "count":
    observability.POSTBACK_REJECTIONS.labels(reason="multi").inc()
else:
    sys.stdout.write(observability.metrics_text().decode())
"""


def test_multiprocess_mode_sums_every_process(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR, counters of separate processes add up in one exposition."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", MULTIPROC_SCRIPT, "count"], env=env, check=True, timeout=120)
    out = subprocess.run([sys.executable, "-c", MULTIPROC_SCRIPT, "show"], env=env, check=True, timeout=120,
                         capture_output=True, text=True).stdout
    assert 'cashback_postback_rejections_total{reason="multi"} 2.0' in out
