"""Login and public-endpoint throttling (Flask-Limiter) with counters in the real Redis.

The suite's shared app runs with throttling off (``CASHBACK_ENV=testing``); these tests
build an app of their own with it on, low limits and a key prefix of this run, so runs
sharing the Redis never count each other's requests.  Each test uses its own client IP.
"""
from __future__ import annotations

import os
import uuid

import pytest
import redis

from portal.limits import resolve_settings
from tests.conftest import TEST_SETTINGS, provider_settings

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
PREFIX = f"test-rl-{os.getpid()}-{uuid.uuid4().hex[:8]}"
PASSWORD = "pw-" + "x" * 8


@pytest.fixture(scope="module")
def limited_app(app, pg_url, testbank):
    """The portal with throttling on: 3 logins, 2 link checks, 2 postbacks a minute per IP."""
    from portal.app import create_app

    limited = create_app({**TEST_SETTINGS, "SQLALCHEMY_DATABASE_URI": pg_url, "JOBS_MODE": "collect",
                          "PAYOUT_PROVIDER_SETTINGS": provider_settings(testbank),
                          "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": REDIS_URL,
                          "RATELIMIT_KEY_PREFIX": PREFIX, "LOGIN_RATE_LIMIT": "3 per minute",
                          "LINKS_RATE_LIMIT": "2 per minute", "POSTBACK_RATE_LIMIT": "2 per minute"})
    yield limited
    conn = redis.Redis.from_url(REDIS_URL)
    for key in conn.scan_iter(match=f"*{PREFIX}*", count=1000):
        conn.delete(key)


def client_from(app, ip: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def assert_throttled(response) -> int:
    assert response.status_code == 429
    seconds = int(response.headers["Retry-After"])
    assert 1 <= seconds <= 60
    return seconds


def test_login_form_is_throttled_per_ip(limited_app, make_user, clean_db):
    """Three POSTs to /login/ from one IP pass; the fourth, even with the right password, is 429."""
    make_user("throttled", "Support")
    attacker = client_from(limited_app, "203.0.113.10")
    for _ in range(3):
        response = attacker.post("/login/", data={"username": "throttled", "password": "wrong-guess"})
        assert response.status_code == 302  # FAB sends a failed login back to the form
    assert attacker.get("/login/").status_code == 200  # showing the form is not an attempt
    response = attacker.post("/login/", data={"username": "throttled", "password": PASSWORD})
    seconds = assert_throttled(response)
    assert "text/html" in response.content_type
    assert f"{seconds}" in response.get_data(as_text=True)
    # another address is not affected and logs in
    other = client_from(limited_app, "203.0.113.11")
    response = other.post("/login/", data={"username": "throttled", "password": PASSWORD})
    assert response.status_code == 302 and "/login" not in response.headers["Location"]


def test_jwt_login_shares_the_login_bucket(limited_app, make_user, clean_db):
    """Attempts on the form and on the JWT login API count together; the API answers our JSON shape."""
    make_user("jwtuser", "Support")
    c = client_from(limited_app, "203.0.113.20")
    body = {"username": "jwtuser", "password": PASSWORD, "provider": "db", "refresh": True}
    assert c.post("/api/v1/security/login", json=body).status_code == 200
    for _ in range(2):
        assert c.post("/login/", data={"username": "jwtuser", "password": "wrong"}).status_code == 302
    response = c.post("/api/v1/security/login?_l_=en", json=body)
    assert_throttled(response)
    payload = response.get_json()
    assert payload["ok"] is False and payload["status"] == 429
    assert payload["error"]["code"] == "rate_limited"
    assert "try again" in payload["error"]["message"]


def test_public_link_check_is_throttled(limited_app, clean_db):
    """POST /api/v1/links/check: two a minute here, the third is 429."""
    c = client_from(limited_app, "203.0.113.30")
    link = {"url": "https://aliexpress.ru/item/1005001234567890.html"}
    assert [c.post("/api/v1/links/check", json=link).status_code for _ in range(2)] == [200, 200]
    response = c.post("/api/v1/links/check", json=link)
    assert_throttled(response)
    assert response.get_json()["error"]["code"] == "rate_limited"


def test_postbacks_are_throttled_and_counters_live_in_redis(limited_app, clean_db):
    """The postback endpoint's limit counts in Redis under this run's prefix."""
    c = client_from(limited_app, "203.0.113.40")
    statuses = [c.post("/api/v1/network/postback", data=b"{}", headers={"X-Cashback-Network": "nope"}).status_code
                for _ in range(3)]
    assert statuses[:2] == [401, 401] and statuses[2] == 429
    keys = list(redis.Redis.from_url(REDIS_URL).scan_iter(match=f"*{PREFIX}*", count=1000))
    assert keys, "the counters should be in Redis under the run's prefix"


def test_the_suite_app_is_not_throttled(app, client, make_user):
    """Under CASHBACK_ENV=testing throttling is off unless asked for: many bad logins, no 429."""
    make_user("many", "Support")
    assert app.appbuilder.sm.limiter.enabled is False
    for _ in range(15):
        assert client.post("/login/", data={"username": "many", "password": "wrong"}).status_code == 302


def test_settings_resolution():
    """On outside testing; storage follows REDIS_URL unless given; an explicit choice wins."""
    prod = {"CASHBACK_ENV": "production", "REDIS_URL": "redis://cache:6379/1", "RATELIMIT_ENABLED": None}
    resolve_settings(prod)
    assert prod["RATELIMIT_ENABLED"] is True and prod["RATELIMIT_STORAGE_URI"] == "redis://cache:6379/1"
    dev = {"CASHBACK_ENV": "development", "REDIS_URL": "", "RATELIMIT_ENABLED": None}
    resolve_settings(dev)
    assert dev["RATELIMIT_ENABLED"] is True and dev["RATELIMIT_STORAGE_URI"] == "memory://"
    testing = {"CASHBACK_ENV": "testing", "REDIS_URL": "", "RATELIMIT_ENABLED": None}
    resolve_settings(testing)
    assert testing["RATELIMIT_ENABLED"] is False
    forced = {"CASHBACK_ENV": "testing", "REDIS_URL": "", "RATELIMIT_ENABLED": True,
              "RATELIMIT_STORAGE_URI": "memory://"}
    resolve_settings(forced)
    assert forced["RATELIMIT_ENABLED"] is True
