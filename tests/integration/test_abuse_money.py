"""Ways one insider, or an outsider facing a default deployment, could create money (issue 15).

Each test replays an attack of the security review and asserts it is now refused:

1. one Finance user turning an unsigned order report into available cashback, then approving
   that customer's payout;
2. one Support agent handing an orphan order's cashback to any customer;
3. a deployment with ``CASHBACK_ENV`` unset running on the public built-in secrets;
4. phone providers in production on the sandbox signer or its public secret;
5. refused postbacks filling the disk, long-lived refresh tokens, /metrics and the extension.
"""
from __future__ import annotations

import pytest

import config
from portal.app import create_app


# --- 3. a deployment that fails closed -----------------------------------------------------------------

SECRETS_ENV = ("CASHBACK_ENV", "SECRET_KEY", "CASHBACK_POSTBACK_SECRETS", "CASHBACK_PUBLIC_URL", "CASHBACK_HOST")


@pytest.fixture
def bare_env(monkeypatch):
    """An environment that sets nothing, as on a fresh server."""
    for name in SECRETS_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_unset_env_does_not_start_on_the_public_secrets(bare_env):
    """Attack: CASHBACK_ENV unset used to mean development, so the app served with the public
    SECRET_KEY (forge an admin session or any JWT) and postback secret (forge credits)."""
    assert config.load()["CASHBACK_ENV"] == "production"
    with pytest.raises(config.ConfigError, match="SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    bare_env.setenv("SECRET_KEY", "a-long-random-production-key")
    with pytest.raises(config.ConfigError, match="POSTBACK"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "cashback.example"])
def test_development_with_public_secrets_is_refused_off_loopback(bare_env, host):
    """Attack: CASHBACK_ENV=development on a reachable address is the same forgery vector."""
    bare_env.setenv("CASHBACK_ENV", "development")
    bare_env.setenv("CASHBACK_HOST", host)
    with pytest.raises(config.ConfigError, match="loopback"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    bare_env.setenv("SECRET_KEY", "a-long-random-key")
    with pytest.raises(config.ConfigError, match="CASHBACK_POSTBACK_SECRETS"):
        create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_explicit_development_on_loopback_still_runs_the_demo(bare_env, host):
    bare_env.setenv("CASHBACK_ENV", "development")
    bare_env.setenv("CASHBACK_HOST", host)
    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert app.config["CASHBACK_ENV"] == "development" and app.config["BIND_HOST"] == host
