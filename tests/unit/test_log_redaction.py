"""Secrets never reach the log lines; JSON lines carry the documented fields."""
from __future__ import annotations

import io
import json
import logging

import pytest
from flask import Flask

from portal.observability import REDACTED, Redactor, config_secrets, log_format, make_handler

CONFIG = {
    "SECRET_KEY": "flask-secret-key-0001",
    "METRICS_TOKEN": "metrics-token-0002",
    "POSTBACK_SECRETS": {"epn": "postback-secret-0003"},
    "PAYOUT_PROVIDER_SETTINGS": {
        "yoomoney": {"base_url": "http://127.0.0.1:8766", "read_timeout": 10,
                     "credentials": {"client_id": "ym-client-0004", "oauth": "ym-oauth-0005"}},
        "webmoney": {"base_url": "http://127.0.0.1:8768", "api_key": "wm-key-0006"},
    },
    "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://app:db-password-0007@db.internal/cashback",
    "REDIS_URL": "redis://:redis-password-0008@cache:6379/0",
}
SECRETS = ["flask-secret-key-0001", "metrics-token-0002", "postback-secret-0003", "ym-client-0004",
           "ym-oauth-0005", "wm-key-0006", "db-password-0007", "redis-password-0008"]


@pytest.fixture
def captured():
    """A logger of its own writing JSON lines (through the redacting handler) to a buffer."""
    stream = io.StringIO()
    logger = logging.getLogger(f"test.redaction.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(make_handler(stream, fmt="json", redactor=Redactor(config_secrets(CONFIG))))
    yield logger, stream
    logger.handlers.clear()


def test_every_configured_secret_is_collected():
    """Settings secrets, provider credentials (nested or by name) and URL passwords are known."""
    found = set(config_secrets(CONFIG))
    assert set(SECRETS) <= found
    assert "http://127.0.0.1:8766" not in found and "10" not in found  # ordinary settings are not


def test_secrets_logged_anyhow_do_not_appear(captured):
    """Secrets in the message, its arguments, extra fields and a traceback are all redacted."""
    logger, stream = captured
    logger.info("booting with key %s and postback secret %s", "flask-secret-key-0001", "postback-secret-0003")
    logger.warning("provider settings: %r", CONFIG["PAYOUT_PROVIDER_SETTINGS"])
    logger.info("connecting to %s and %s", CONFIG["SQLALCHEMY_DATABASE_URI"], CONFIG["REDIS_URL"])
    logger.info("request headers", extra={"headers": "Authorization: Bearer metrics-token-0002"})
    try:
        raise RuntimeError("login failed for token ym-oauth-0005")
    except RuntimeError:
        logger.exception("provider call raised")
    text = stream.getvalue()
    for secret in SECRETS:
        assert secret not in text, secret
    assert text.count(REDACTED) >= len(SECRETS)
    assert "db.internal" in text  # the rest of the message survives


@pytest.mark.parametrize("line", [
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
    'form {"username": "alice", "password": "hunter2-unknown"}',
    "POST /login/ username=alice&password=hunter2-unknown",
    "client_secret=abcdef123456 sent",
    "redis://user:pw-not-configured@somewhere:6379/0",
])
def test_secret_looking_values_are_redacted_even_when_unknown(captured, line):
    """Values after password=/secret=/token=/Authorization: and URL passwords go, known or not."""
    logger, stream = captured
    logger.info(line)
    text = stream.getvalue()
    for value in ("eyJhbGciOiJIUzI1NiJ9", "hunter2-unknown", "abcdef123456", "pw-not-configured"):
        assert value not in text
    assert REDACTED in text


def test_json_lines_carry_the_documented_fields(captured):
    """One JSON object per line: ts, level, logger, message, request_id, extra fields."""
    logger, stream = captured
    logger.info("Payout %s: %s", 7, "succeeded", extra={"payout_id": 7, "provider": "test"})
    entry = json.loads(stream.getvalue().strip())
    assert entry["level"] == "INFO" and entry["logger"] == logger.name
    assert entry["message"] == "Payout 7: succeeded" and entry["request_id"] == "-"
    assert entry["payout_id"] == 7 and entry["provider"] == "test" and entry["ts"].endswith("+00:00")


def test_request_id_is_on_the_lines_of_a_request(captured):
    """Inside a request the client's X-Request-ID (or a generated one) is on every line."""
    logger, stream = captured
    app = Flask("t")
    with app.test_request_context("/", headers={"X-Request-ID": "req-123"}):
        logger.info("inside")
    with app.test_request_context("/"):
        logger.info("generated")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["request_id"] == "req-123"
    assert len(second["request_id"]) == 32


def test_log_format_defaults():
    """JSON in production unless told otherwise; text elsewhere."""
    assert log_format({"CASHBACK_ENV": "production", "LOG_FORMAT": ""}) == "json"
    assert log_format({"CASHBACK_ENV": "development", "LOG_FORMAT": ""}) == "text"
    assert log_format({"CASHBACK_ENV": "production", "LOG_FORMAT": "text"}) == "text"
    assert log_format({"CASHBACK_ENV": "development", "LOG_FORMAT": "json"}) == "json"
