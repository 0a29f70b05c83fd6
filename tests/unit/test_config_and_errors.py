"""Configuration safety and the one JSON error shape (no services: in-memory SQLite)."""
from __future__ import annotations

import pytest

import config
from portal.app import create_app
from portal.errors import Conflict, error_body


def test_defaults_need_no_services(monkeypatch):
    """With nothing set: SQLite under instance/, no Redis, Russian first."""
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "CASHBACK_ENV"):
        monkeypatch.delenv(name, raising=False)
    settings = config.load()
    assert settings["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert settings["SQLALCHEMY_DATABASE_URI"].endswith("instance/cashback.db")
    assert settings["REDIS_URL"] == "" and settings["BABEL_DEFAULT_LOCALE"] == "ru"


def test_postgres_url_uses_psycopg3(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h:5432/db")
    assert config.load()["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h:5432/db"


def test_production_refuses_default_secret(monkeypatch):
    """CASHBACK_ENV=production with the built-in key stops start-up with a clear message."""
    monkeypatch.setenv("CASHBACK_ENV", "production")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(config.ConfigError, match="SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_refuses_default_postback_secret(monkeypatch):
    monkeypatch.setenv("CASHBACK_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "a-long-random-production-key")
    monkeypatch.delenv("CASHBACK_POSTBACK_SECRETS", raising=False)
    with pytest.raises(config.ConfigError, match="POSTBACK"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_refuses_mail_links_from_the_host_header(monkeypatch):
    """Without CASHBACK_PUBLIC_URL a password-reset link would be built from the request's Host
    header (an attacker's ``Host: evil.tld`` would receive the token): production refuses."""
    monkeypatch.setenv("CASHBACK_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "a-long-random-production-key")
    monkeypatch.setenv("CASHBACK_POSTBACK_SECRETS", "epn:a-real-network-key")
    monkeypatch.delenv("CASHBACK_PUBLIC_URL", raising=False)
    with pytest.raises(config.ConfigError, match="CASHBACK_PUBLIC_URL"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


def test_production_starts_with_a_real_secret(monkeypatch):
    monkeypatch.setenv("CASHBACK_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "a-long-random-production-key")
    monkeypatch.setenv("CASHBACK_POSTBACK_SECRETS", "epn:a-real-network-key")
    monkeypatch.setenv("CASHBACK_PUBLIC_URL", "https://cashback.example")
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["SESSION_COOKIE_SECURE"] is True


@pytest.fixture(scope="module")
def shape_app():
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "TESTING": True, "CASHBACK_ENV": "testing"})

    @app.get("/api/v1/_test/conflict")
    def _conflict():
        raise Conflict("Already there.", code="already_there", errors=[{"field": "x", "code": "dup", "message": "dup"}])

    return app


def test_error_shape_for_domain_errors(shape_app):
    """A domain error becomes the one JSON shape with its status."""
    response = shape_app.test_client().get("/api/v1/_test/conflict")
    assert response.status_code == 409
    assert response.get_json() == {
        "ok": False, "status": 409,
        "error": {"code": "already_there", "message": "Already there."},
        "errors": [{"field": "x", "code": "dup", "message": "dup"}],
    }


def test_error_shape_for_unknown_api_paths(shape_app):
    """Plain HTTP errors under /api/ use the same shape."""
    response = shape_app.test_client().get("/api/v1/no-such-thing")
    body = response.get_json()
    assert response.status_code == 404
    assert set(body) == {"ok", "status", "error", "errors"} and body["error"]["code"] == "not_found"


def test_error_body_has_a_fixed_key_set():
    assert set(error_body(400, "x", "y")) == {"ok", "status", "error", "errors"}
