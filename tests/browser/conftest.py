"""Browser tests: a live portal in Chromium (Playwright), on PostgreSQL, with real payouts.

* ``live_app`` — the portal built with ``tests.conftest.build_app`` on the run's PostgreSQL
  database (``pg_url``), CSRF on (as in production), jobs on an in-process thread
  (``JOBS_MODE=thread``) so approved payouts are paid by the Test Bank sandbox
  (``testbank``) while the browser waits.
* ``live_server`` — that app behind a real WSGI server (``werkzeug.serving.make_server``)
  on 127.0.0.1 and a free port, in a background thread; its base URL, returned once ``/health``
  answers (a readiness probe with a generous deadline, which also warms the app up).
* ``shop`` — a local "AliExpress": an HTTPS server (self-signed certificate made with the
  ``openssl`` command) that answers for the affiliate network's host of
  ``NETWORK_URL_TEMPLATE`` (``alitems.site``: redirects to the ``ulp`` product link) and for
  the AliExpress hosts (a product page).  Chromium reaches it through
  ``--host-resolver-rules``, so ``/go/<sub_id>`` lands on a local product page.
* ``browser`` — one headless Debian Chromium per session (``chromium`` on ``PATH``; a missing
  one FAILS the tests: CI installs it, see ``scripts/lib.sh`` ``ensure_chromium``).
* ``context`` / ``page`` — a new browser context per test (locale ru-RU unless a test makes
  its own with ``new_context``).
* ``screenshot(page, step)`` — ``instance/artifacts/screenshots/<test-name>-<step>.png``
  (directory from ``CASHBACK_ARTIFACTS``, default ``<repo>/instance/artifacts``, kept as CI
  artifacts); a failing test saves one of each of its open pages (``…-failed-<n>.png``) by itself.
* ``portal_db`` — data set-up and DB checks for the journeys (customers, staff, rates,
  signed postbacks, funding, clicks, claims with a proposed credit, polling a payout's
  state); after each test the live portal's queued jobs are dropped (waiting for the one
  running), every data table is emptied and the Test Bank reset.

Run them alone with ``bash scripts/test.sh tests/browser`` (or ``-m browser``); leave them out
with ``-m "not browser"``.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.conftest import (READY_SECONDS, build_app, config_snapshot, empty_data_tables, provider_settings,
                            restore_config, wait_for_http)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CASHBACK_ARTIFACTS") or REPO / "instance" / "artifacts")
SCREENSHOTS = ARTIFACTS / "screenshots"
PASSWORD = "pw-" + "x" * 8
#: Hosts Chromium sends to the local shop (the AliExpress hosts links.py accepts, and the network's).
SHOP_HOSTS = ("aliexpress.com", "*.aliexpress.com", "aliexpress.ru", "*.aliexpress.ru",
              "aliexpress.us", "*.aliexpress.us", "alitems.site")
NETWORK_TEMPLATE = "https://alitems.site/g/1e8d114494c02ea3d6a016525dc3e8/?sub={sub_id}&ulp={url}"
#: Playwright's waits (auto-waiting, expect) give up after this many milliseconds: generous, as a
#: bound for a busy machine (CI on a shared 2-core box), not a measure of speed.
WAIT_MS = 30_000
expect.set_options(timeout=WAIT_MS)

#: Bounded polling of the database (payouts paid by the in-process worker thread).
POLL_SECONDS = 30.0


# --- Chromium -----------------------------------------------------------------------------------

def chromium_path() -> str:
    """Debian's Chromium, or a failed test that says how to get it (never a skip)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.fail("Chromium is not installed: the browser tests need Debian's `chromium` on PATH "
                    "(`apt-get install -y chromium`; scripts/test.sh installs it).", pytrace=False)
    return path


# --- the local AliExpress -----------------------------------------------------------------------

class _ShopHandler(BaseHTTPRequestHandler):
    server: "ShopServer"

    def do_GET(self):  # noqa: N802 (http.server's name)
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        parts = urlsplit(self.path)
        self.server.requests.append((host, parts.path, parts.query))
        if host == "alitems.site":  # the affiliate network: note the sub-id, send on to the product
            target = (parse_qs(parts.query).get("ulp") or [""])[0]
            self.send_response(302)
            self.send_header("Location", target or "https://aliexpress.com/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        match = re.fullmatch(r"/item/(\d+)\.html", parts.path)
        if match is None:
            self._page(404, "<h1>Not found</h1>")
            return
        self._page(200, f'<h1 id="product" data-product="{match.group(1)}">AliExpress · Товар {match.group(1)}</h1>'
                        '<button>Купить сейчас</button>')

    def _page(self, status: int, body: str) -> None:
        raw = f"<!doctype html><html lang='ru'><head><meta charset='utf-8'><title>AliExpress</title></head>" \
              f"<body>{body}</body></html>".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


class ShopServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, certfile: Path, keyfile: Path):
        super().__init__(("127.0.0.1", 0), _ShopHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(certfile), str(keyfile))
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.requests: list[tuple[str, str, str]] = []

    @property
    def port(self) -> int:
        return self.server_address[1]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.fail("The `openssl` command is missing: the browser tests need it for the local AliExpress "
                    "(apt-get install -y openssl).", pytrace=False)
    cert, key = directory / "shop-cert.pem", directory / "shop-key.pem"
    names = ",".join(f"DNS:{h}" for h in SHOP_HOSTS)
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=aliexpress.com", "-addext", f"subjectAltName={names}"],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="session")
def shop(tmp_path_factory):
    server = ShopServer(*_self_signed(tmp_path_factory.mktemp("shop")))
    thread = threading.Thread(target=server.serve_forever, name="shop", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# --- the live portal ----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def live_app(pg_url, testbank):
    app = build_app(pg_url, PAYOUT_PROVIDER_SETTINGS=provider_settings(testbank), JOBS_MODE="thread",
                    WTF_CSRF_ENABLED=True, NETWORK_URL_TEMPLATE=NETWORK_TEMPLATE,
                    PAYOUT_RETRY_SECONDS=[1], PAYOUT_CHECK_SECONDS=[1])
    yield app
    drain_jobs(app)
    from portal.extensions import db

    with app.app_context():  # the rest of the run needs no idle connections of this app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def live_server(live_app):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, live_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-portal", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    wait_for_http(f"{url}/health")
    yield url
    server.shutdown()
    server.server_close()
    thread.join(timeout=READY_SECONDS)


# --- the browser --------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser(request):
    executable = chromium_path()  # first: a missing Chromium is the message to see
    shop = request.getfixturevalue("shop")
    from playwright.sync_api import sync_playwright

    rules = ", ".join(f"MAP {host} 127.0.0.1:{shop.port}" for host in SHOP_HOSTS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, headless=True, timeout=READY_SECONDS * 1000,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--host-resolver-rules={rules}",
                  "--ignore-certificate-errors"])
        yield chromium
        chromium.close()


@pytest.fixture
def new_context(browser, live_server, request, portal_db):
    """``new_context(locale="en-GB")``: more contexts (a second user) in one test, closed after it."""
    contexts = []

    def make(locale: str = "ru-RU"):
        context = browser.new_context(base_url=live_server, locale=locale, ignore_https_errors=True,
                                      extra_http_headers={"Accept-Language": locale})
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context

    request.node._browser_contexts = contexts
    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def context(new_context):
    return new_context()


@pytest.fixture
def page(context):
    return context.new_page()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120]


@pytest.fixture
def screenshot(request):
    """``screenshot(page, "step")`` -> ``<artifacts>/screenshots/<test-name>-<step>.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, step: str) -> Path:
        path = SCREENSHOTS / f"{_slug(request.node.name)}-{_slug(step)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    contexts = getattr(item, "_browser_contexts", [])
    pages = [p for c in contexts for p in c.pages]
    if not pages:
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for n, page in enumerate(pages, 1):
        path = SCREENSHOTS / f"{_slug(item.name)}-failed-{n}.png"
        try:
            page.screenshot(path=str(path), full_page=True)
        except Exception as exc:  # a crashed page must not hide the test's own failure
            report.sections.append(("screenshot", f"could not save {path}: {exc}"))
        else:
            report.sections.append(("screenshot", str(path)))


# --- data and DB checks -------------------------------------------------------------------------

class PortalDb:
    """Set-up and checks against the live portal's database (each call in its own app context)."""

    def __init__(self, app, base_url: str):
        self.app = app
        self.base_url = base_url

    def _ctx(self):
        return self.app.app_context()

    def live_config(self, name: str):
        """A setting of the live portal (thresholds and the like)."""
        return self.app.config[name]

    def customer(self, email: str, name: str = "Анна") -> int:
        from portal.extensions import db
        from portal.services import customers
        from portal.services.audit import Actor

        with self._ctx():
            customer = customers.create_customer(db.session, self.app.appbuilder.sm, email=email, name=name,
                                                 password=PASSWORD, actor=Actor.system("test"))
            db.session.commit()
            return customer.id

    def staff(self, username: str, role: str) -> int:
        from portal.extensions import db

        with self._ctx():
            sm = self.app.appbuilder.sm
            user = sm.add_user(username=username, first_name=username, last_name="Test",
                               email=f"{username}@test.local", role=sm.find_role(role), password=PASSWORD)
            assert user, f"could not create {username}"
            db.session.commit()
            return user.id

    def rate(self, rub_per_usd: str, day: dt.date | None = None) -> None:
        from portal.extensions import db
        from portal.services import fx
        from portal.services.audit import Actor

        with self._ctx():
            fx.correct_rate(db.session, day or dt.date.today(), Decimal(rub_per_usd), Actor.system("test"),
                            "browser test rate")
            db.session.commit()

    def fund(self, customer_id: int, amount: str) -> None:
        """Available cashback straight from the network receivable (set-up, not the journey)."""
        from portal.extensions import db
        from portal.services import ledger
        from portal.services.audit import Actor
        from portal.services.ledger import customer_account, system_account, transfer

        with self._ctx():
            ledger.post(db.session, kind="test.fund", reference=f"fund:{customer_id}:{amount}",
                        actor=Actor.system("test"),
                        legs=transfer(system_account("network_receivable"),
                                      customer_account(customer_id, "available"), Decimal(amount)))
            db.session.commit()

    def old_details(self, customer_id: int, provider_code: str, account: str) -> int:
        """Saved payout details older than the new-details rule (so only the amount sends to review)."""
        from portal import providers
        from portal.extensions import db
        from portal.models import Customer
        from portal.services import payouts
        from portal.services.audit import Actor

        with self._ctx():
            details = payouts.save_details(db.session, db.session.get(Customer, customer_id),
                                           providers.provider(provider_code), account, actor=Actor.system("test"))
            details.created_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)
            db.session.commit()
            return details.id

    def withdrawal(self, customer_id: int, details_id: int, amount: str, key: str):
        """A withdrawal requested through the service (set-up for the Finance pages)."""
        from portal import providers
        from portal.extensions import db
        from portal.models import Customer, PayoutDetails
        from portal.services import payouts
        from portal.services.audit import Actor

        with self._ctx():
            details = db.session.get(PayoutDetails, details_id)
            result = payouts.request_withdrawal(
                db.session, db.session.get(Customer, customer_id), details_id=details_id,
                amount_usd=Decimal(amount), request_key=key, provider=providers.provider(details.provider_code),
                config=self.app.config, actor=Actor.system("test"))
            db.session.flush()
            # the state as decided, read before the commit: the in-process job thread may move an
            # approved payout on (submitting, succeeded) the moment it is committed
            decided = (result.payout.id, result.payout.state, result.payout.approvals_needed)
            db.session.commit()
            return decided

    def postback(self, sub_id: str, status: str, *, order: str, amount: str = "100.00",
                 commission: str = "8.00", n: int = 1) -> requests.Response:
        """A signed network postback over HTTP to the live portal, as the network sends it."""
        from portal.services.postback_signing import NETWORK_HEADER, sign

        network = self.app.config["DEFAULT_NETWORK"]
        secret = self.app.config["POSTBACK_SECRETS"][network].encode()
        body = json.dumps({"event_id": f"{order}:{status}:{n}", "order_id": order, "sub_id": sub_id,
                           "status": status, "order_amount": amount, "currency": "USD", "commission": commission,
                           "event_time": (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10 - n))
                           .replace(microsecond=0).isoformat()}).encode()
        headers = sign(secret, body, int(time.time()))
        headers[NETWORK_HEADER] = network
        headers["Content-Type"] = "application/json"
        return requests.post(f"{self.base_url}/api/v1/network/postback", data=body, headers=headers, timeout=10)

    def click(self, customer_id: int, url: str, at: dt.datetime, channel: str = "web") -> str:
        """A click of the customer at ``at`` through the clicks service (set-up); its sub-id."""
        from portal.extensions import db
        from portal.models import Customer
        from portal.services import clicks

        with self._ctx():
            result = clicks.create_click(db.session, db.session.get(Customer, customer_id), url, channel,
                                         config=self.app.config, now=at)
            db.session.commit()
            return result.click.sub_id

    def claim_with_credit(self, customer_id: int, order: str, day: dt.date, credit: str,
                          proposed_by: str) -> tuple[int, int]:
        """A claim opened through the service (diagnosed at once) and a credit proposed by
        ``proposed_by`` (set-up for Finance's credits page); ``(claim id, credit id)``."""
        from portal.extensions import db
        from portal.models import Customer
        from portal.services import claims
        from portal.services.audit import Actor

        with self._ctx():
            actor = Actor.system("test")
            claim = claims.open_claim(db.session, db.session.get(Customer, customer_id),
                                      claims.ClaimInput(order, day, Decimal("40.00")), actor=actor,
                                      opened_by=proposed_by, channel="staff", config=self.app.config)
            proposed = claims.propose_credit(db.session, claim.id, Decimal(credit), reason="browser test credit",
                                             actor=actor, proposed_by=proposed_by)
            db.session.commit()
            return claim.id, proposed.id

    def balances(self, customer_id: int) -> dict[str, Decimal]:
        from portal.extensions import db
        from portal.services import ledger

        with self._ctx():
            return ledger.customer_balances(db.session, customer_id)

    def scalar(self, statement):
        from portal.extensions import db

        with self._ctx():
            return db.session.execute(statement).scalar_one_or_none()

    def rows(self, statement) -> list:
        from portal.extensions import db

        with self._ctx():
            return list(db.session.execute(statement).all())

    def payout_state(self, payout_id: int) -> str:
        from portal.models import Payout

        return self.scalar(sa.select(Payout.state).where(Payout.id == payout_id))

    def wait_for_payout(self, payout_id: int, until: tuple[str, ...] = ("succeeded", "failed", "unknown")) -> str:
        """Poll the payout's state (bounded loop) until it is one of ``until``; return the last state."""
        deadline = time.monotonic() + POLL_SECONDS
        state = self.payout_state(payout_id)
        while state not in until and time.monotonic() < deadline:
            time.sleep(0.2)
            state = self.payout_state(payout_id)
        return state


_idle_events: dict[str, threading.Event] = {}


def mark_idle(key: str) -> None:
    """A job of :func:`drain_jobs`: the in-process queue reached it."""
    _idle_events.pop(key).set()


def drain_jobs(app) -> None:
    """Drop the live portal's queued jobs (status checks and retries a test left behind would
    otherwise run during the next test, on its rows) and wait for the one running to end."""
    from portal import tasks

    queue = app.extensions.get("cashback_in_process_queue")
    if queue is None:
        return
    with queue._cond:
        queue._heap.clear()
    key = f"idle-{time.monotonic_ns()}"
    done = _idle_events[key] = threading.Event()
    queue.put(tasks._Job(0.0, next(tasks._seq), tasks.QUEUE_DEFAULT, f"{__name__}.mark_idle", (key,)))
    if not done.wait(READY_SECONDS):
        pytest.fail("the live portal's job thread did not finish its job", pytrace=False)


@pytest.fixture
def portal_db(live_app, live_server, testbank):
    """Data helpers for one test; afterwards the queued jobs are dropped, the live portal's
    settings put back, every data table emptied (roles stay) and the Test Bank reset."""
    saved = config_snapshot(live_app)
    yield PortalDb(live_app, live_server)
    drain_jobs(live_app)
    restore_config(live_app, saved)
    empty_data_tables(live_app)
    testbank.reset()


def login(page, username: str, password: str = PASSWORD) -> None:
    """Sign in through the portal's login form and wait to leave it."""
    page.goto("/login/")
    page.fill("#username", username)
    page.fill("#password", password)
    page.locator("input[type=submit]").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def translated(app, msgid: str, locale: str = "ru", **values) -> str:
    """``msgid`` as the portal shows it in ``locale`` (English until the lead's translation lands)."""
    from flask_babel import force_locale, gettext

    with app.test_request_context("/"), force_locale(locale):
        return gettext(msgid, **values)
