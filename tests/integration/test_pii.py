"""Personal data: wallets and phone numbers masked for roles that may not see them, in pages,
exports and logs; secrets never logged; provider credentials only from the configuration.

Anna (wallet ``TEST-12345674``) is paid through the Test Bank sandbox; Boris saves an MTS
phone number and asks for a withdrawal to it (in review: new details).  Support and
Developer read every list and page where payouts or customers appear; Finance (who holds
``payouts.pii``) is the control that the full values are in the data at all.
"""
from __future__ import annotations

import io
import logging
import re

import pytest
import sqlalchemy as sa

from portal import observability
from portal.extensions import db
from portal.models import Payout
from portal.models.payouts import mask
from tests.conftest import login
from tests.fuzz.conftest import two_customers  # noqa: F401  (fixture)
from tests.integration.test_payouts import settle

PHONE = "+79161234567"
ANNA_WALLET = "TEST-12345674"
BORIS_WALLET = "TEST-11111116"
FULL = (PHONE, PHONE[1:], ANNA_WALLET, BORIS_WALLET)
EN = {"Accept-Language": "en"}


@pytest.fixture
def pii_world(app, client, two_customers):
    boris = two_customers.boris
    details = client.post("/api/v1/me/payout-details", json={"provider": "mts", "account": "+7 (916) 123-45-67"},
                          headers={**boris.auth, **EN})
    assert details.status_code == 201, details.get_json()
    assert details.get_json()["account_masked"] == mask(PHONE)
    response = client.post("/api/v1/me/withdrawals", json={"details_id": details.get_json()["id"], "amount_usd": "1.00"},
                           headers={**boris.auth, "Idempotency-Key": "phone-1"})
    assert response.status_code == 201, response.get_json()
    two_customers.boris.phone_payout_id = response.get_json()["id"]
    with app.app_context():
        assert db.session.get(Payout, two_customers.boris.phone_payout_id).account == PHONE
    return two_customers


def _pages(world) -> dict[str, list[str]]:
    boris, anna = world.boris, world.anna
    return {
        "Support": ["/payoutview/list/", f"/payoutview/show/{boris.phone_payout_id}",
                    f"/payoutview/show/{anna.payout_id}", f"/support/customers/{boris.id}/timeline",
                    f"/support/customers/{anna.id}/timeline",
                    "/support/customers/search?q=boris"],
        "Developer": ["/payouttechview/list/", f"/payouttechview/show/{boris.phone_payout_id}",
                      f"/payouttechview/show/{anna.payout_id}", "/developers/", "/developers/failed-jobs",
                      "/developers/sandbox"],
    }


@pytest.mark.parametrize("role", ["Support", "Developer"])
def test_lists_and_pages_mask_wallets_and_phones(app, client, make_user, pii_world, role):
    make_user(f"pii-{role.lower()}", role)
    login(client, f"pii-{role.lower()}")
    seen_any = False
    for url in _pages(pii_world)[role]:
        response = client.get(url, headers=EN)
        assert response.status_code == 200, (url, response.status_code)
        html = response.get_data(as_text=True)
        leaked = [value for value in FULL if value in html]
        assert not leaked, (url, leaked)
        seen_any |= mask(PHONE) in html or mask(BORIS_WALLET) in html
    if role == "Support":  # Support recognises the payout by its masked account
        assert seen_any


def test_finance_with_the_pii_permission_sees_the_full_account(app, client, make_user, pii_world):
    """The control: the pages above would show the number, had the role the permission."""
    make_user("pii-finance", "Finance")
    login(client, "pii-finance")
    html = client.get(f"/payoutview/show/{pii_world.boris.phone_payout_id}", headers=EN).get_data(as_text=True)
    assert PHONE in html


@pytest.mark.parametrize("role", ["Support", "Developer"])
def test_payout_report_and_its_csv_are_finance_only(client, make_user, pii_world, role):
    make_user(f"csv-{role.lower()}", role)
    login(client, f"csv-{role.lower()}")
    for url in ("/payouts/report/", "/payouts/report/export.csv"):
        response = client.get(url)
        assert response.status_code in (302, 403), (url, response.status_code)
        assert not any(value in response.get_data(as_text=True) for value in FULL)


def test_payout_report_csv_carries_no_accounts(client, make_user, pii_world):
    make_user("csv-finance", "Finance")
    login(client, "csv-finance")
    response = client.get("/payouts/report/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    body = response.get_data(as_text=True)
    assert body.strip() and not any(value in body for value in FULL)


def test_a_full_payout_run_logs_no_account_and_no_secret(app, pii_world, caplog):
    """Anna's payout sent, checked and settled at DEBUG: the raw records carry no full wallet
    or phone; the portal's handler (what production writes) carries no secret either."""
    stream = io.StringIO()
    handler = observability.make_handler(stream, fmt="json")
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        with app.app_context():
            payout = settle(db.session, pii_world.anna.payout_id)
            assert payout.state == "succeeded"
            logging.getLogger("portal.test").info("provider settings %s, key %s",
                                                  app.config["PAYOUT_PROVIDER_SETTINGS"], app.config["SECRET_KEY"])
    finally:
        root.removeHandler(handler)
    raw = caplog.text
    assert caplog.records, "the run logged nothing: the test would prove nothing"
    assert not [value for value in FULL if value in raw]
    written = stream.getvalue()
    secrets = observability.config_secrets(app.config)
    assert app.config["SECRET_KEY"] in secrets
    assert not [secret for secret in secrets if secret in written]
    assert observability.REDACTED in written


# --- credentials only from the configuration -------------------------------------------------------

def test_production_never_runs_a_provider_on_its_shipped_sandbox_credentials(monkeypatch, tmp_path):
    """Providers ship sandbox credentials as defaults (the demo); in production a provider
    without settings of its own from the environment is not offered at all."""
    import json

    from portal import providers
    from portal.app import create_app

    monkeypatch.setenv("CASHBACK_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "a-real-secret-key-for-this-test")
    monkeypatch.setenv("CASHBACK_POSTBACK_SECRETS", "epn:a-real-network-key")
    monkeypatch.setenv("CASHBACK_PUBLIC_URL", "https://cashback.example")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'prod.db'}")
    monkeypatch.setenv("CASHBACK_INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("CASHBACK_PROVIDER_SETTINGS", raising=False)
    assert providers.all_providers(create_app()) == {}
    real = {"yoomoney": {"credentials": {"shop_id": "prod-shop", "secret_key": "prod-secret-from-env"}},
            # the Test Bank is play money: never offered in production, whatever its settings
            "test": {"credentials": {"username": "prod-user", "password": "prod-pass-from-env",
                                     "webhook_secret": "prod-hook-from-env"}}}
    monkeypatch.setenv("CASHBACK_PROVIDER_SETTINGS", json.dumps(real))
    built = providers.all_providers(create_app())
    assert list(built) == ["yoomoney"]
    assert dict(built["yoomoney"].settings["credentials"]) == real["yoomoney"]["credentials"]


def test_credentials_from_the_environment_replace_the_sandbox_defaults(monkeypatch):
    """CASHBACK_PROVIDER_SETTINGS (the environment) is where a provider's credentials come from."""
    import json

    import config
    from plugins.manager import collect_providers, get_plugin_manager

    pm = get_plugin_manager(load_entrypoints=True)
    defaults = collect_providers(pm, {})
    assert {code: dict(p.settings["credentials"]) for code, p in defaults.items()
            if dict(p.settings["credentials"])}, "providers ship no sandbox credentials: the test proves nothing"
    real = {"test": {"credentials": {"username": "prod-user", "password": "prod-pass-from-env",
                                     "webhook_secret": "prod-hook-from-env"}}}
    monkeypatch.setenv("CASHBACK_PROVIDER_SETTINGS", json.dumps(real))
    built = collect_providers(pm, config.load()["PAYOUT_PROVIDER_SETTINGS"])
    assert dict(built["test"].settings["credentials"]) == real["test"]["credentials"]
    assert "prod-pass-from-env" in observability.config_secrets({"PAYOUT_PROVIDER_SETTINGS": real})


def test_no_credential_literals_outside_sandbox_defaults():
    """grep: credentials appear only as the providers' sandbox defaults and in sandboxes/tests."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"""(?i)["'](password|token|secret|api_key|signing_secret|webhook_secret|webhook_key)["']\s*:\s*["'](?!\.\.\.["'])[^"']+["']""")
    offenders = []
    for path in [*root.glob("portal/**/*.py"), *root.glob("plugins/**/*.py"), root / "config.py"]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []
