"""Issue 16 point 4: every staff and cabinet page, in Russian, shows no English and no raw codes.

The demo data (``cashback seed-demo``) is seeded once for this module; each demo login (Admin,
Support, Finance, Developer, customers) walks every page reachable from its landing page and
its menu: each list, and up to :data:`PER_PATTERN` pages of each kind (``/payoutview/show/<n>``…),
by following the links of the pages it reads (GET only; logout, language switch, CSV and
redirects out of the portal are left alone).

On each page the visible text (text nodes and the attributes a reader sees) is checked:

* no English word outside :data:`ALLOWED` (currency codes, brands, abbreviations Russian
  readers use as they are) once the data the page shows is set aside: what people and the
  network typed (names, e-mails, reasons, order numbers, sub-ids, links …, read from the
  database as :func:`data_strings`), URLs and e-mail addresses;
* no raw code of a table of ``portal.labels.ENUMS`` shown as a whole text (``succeeded``,
  ``in_review``) and no ``snake_case`` token at all.
"""
from __future__ import annotations

import collections
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import current_app

from portal import labels
from portal.extensions import db
from portal.services import demo
from tests.conftest import KEEP_TABLES

#: One xdist worker runs this module: the demo is seeded once (module fixture ``demo_app``), not once per xdist worker.
pytestmark = [pytest.mark.xdist_group("test_russian_ui"), pytest.mark.slow]  # slow: the group starts first, not last

#: Pages of one kind (digits replaced) walked per login.
PER_PATTERN = 2
#: Pages per login at most (the walk stops there; the test then says so).
MAX_PAGES = 600
#: Words a Russian page may show as they are.
ALLOWED = frozenset({
    "USD", "RUB", "EUR", "CSV", "UTC", "SLA", "HTTP", "ID", "IP", "API", "JSON", "SMS", "URL", "PDF", "FAQ",
    "QIWI", "YooMoney", "WebMoney", "AliExpress", "ePN", "CPA", "HMAC", "SHA", "RQ", "PNG", "JPEG", "UTF", "XML",
    "English",  # the language menu names each language in itself
    "localhost",
})
#: Paths a walk never opens: they act, leave the HTML portal or switch the language.
NOT_WALKED = re.compile(r"^/(logout|lang|static|api|go|r|swagger|health|metrics)\b|\.csv$|/delete/|/action"
                        r"|/download|/export|/confirm/|/password/reset")
#: Query arguments of FAB's list ordering, paging and filters: another view of a page already walked.
NOT_WALKED_QUERY = re.compile(r"(^|&)(_oc_|_od_|psize_|page_|_flt_|next=)")
SNAKE = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")
#: A Latin word (not part of a Cyrillic one: «ЮMoney» is a brand).
WORD = re.compile(r"(?<![А-Яа-яЁёA-Za-z])[A-Za-z][A-Za-z'’]*[A-Za-z]")
#: Terms Russian pages use as they are: the network's «sub-id», a setting's name (``REDIS_URL``).
TERMS = re.compile(r"\b[Ss]ub-id\b|\b[A-Z]+(?:_[A-Z]+)+\b")
#: A masked account (``TEST••••5674``): data.
MASKED = re.compile(r"\S*•+\S*")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
URL = re.compile(r"\b(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|ru|local|site|net|org|us)(?:/\S*)?\b")
VISIBLE_ATTRIBUTES = ("title", "placeholder", "alt", "aria-label")


class PageText(HTMLParser):
    """The visible text of a page (each text node and visible attribute) and its links."""

    #: Not text for the reader, or shown as a technical identifier on purpose (``<code>``: a
    #: base URL, a job's function, an idempotency key; ``<pre>``: a raw evidence dump).
    #: ``<textarea>``: a form's value, e.g. a reply in the customer's own language.
    SKIP = {"script", "style", "head", "code", "pre", "textarea"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.links: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in self.SKIP:
            self._skip += 1
        if tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])
        self.texts += [attributes[name] for name in VISIBLE_ATTRIBUTES if attributes.get(name)]
        if tag == "input" and attributes.get("type") in ("submit", "button") and attributes.get("value"):
            self.texts.append(attributes["value"])

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.texts.append(" ".join(data.split()))


def data_strings() -> list[str]:
    """What people and the network typed, as the pages may show it (longest first)."""
    from portal.models import (AuditRecord, Claim, Click, Customer, NetworkEvent, Order, Payout, PayoutApproval,
                               PayoutAttempt, PayoutDetails, PostbackRejection, Posting, Promo)
    from portal.models.claims import ClaimCredit

    columns = [Customer.name, Customer.email, Customer.block_reason, Customer.referral_code, Customer.partner_id, Click.sub_id,
               Click.canonical_url, Click.product_id,
               Order.network_order_id, Order.sub_id, NetworkEvent.event_id, NetworkEvent.sub_id,
               Posting.reference, Posting.memo, AuditRecord.reason, AuditRecord.object_id,
               Payout.account, Payout.failure_message, PayoutApproval.reason, PayoutAttempt.idempotency_key,
               PayoutAttempt.raw_message,
               PayoutDetails.account, Promo.name, PostbackRejection.body_excerpt, PostbackRejection.ip_hash, Claim.order_number, Claim.reply_sent, Claim.suggested_reply, ClaimCredit.reason,
               ClaimCredit.decision_note]
    found: set[str] = set()
    for column in columns:
        found |= {str(v) for v in db.session.execute(sa.select(column).distinct()).scalars() if v}
    users = db.session.execute(sa.text("SELECT username, first_name, last_name, email FROM ab_user")).all()
    found |= {str(v) for row in users for v in row if v}
    found.add(current_app.config["APP_NAME"])  # the brand
    return sorted((v for v in found if len(v) >= 3 and not v.isdigit()), key=len, reverse=True)


def findings(text: str, data: list[str], codes: frozenset[str]) -> list[str]:
    """What is wrong with one visible text: English words, raw codes."""
    if text in codes:
        return [f"raw code {text!r}"]
    text = URL.sub(" ", EMAIL.sub(" ", text))
    for value in data:
        if value in text:
            text = text.replace(value, " ")
    text = MASKED.sub(" ", TERMS.sub(" ", text))
    wrong = [f"raw code {m!r}" for m in SNAKE.findall(text)]
    text = SNAKE.sub(" ", text)
    wrong += [f"English {w!r}" for w in WORD.findall(text) if w not in ALLOWED]
    return wrong


def walk(client, start: list[str]) -> dict[str, tuple[int, PageText | None]]:
    """GET every page reachable from ``start`` (see the module docstring)."""
    pages: dict[str, tuple[int, PageText | None]] = {}
    per_pattern: collections.Counter[str] = collections.Counter()
    queue = collections.deque(start)
    while queue and len(pages) < MAX_PAGES:
        parts = urlsplit(queue.popleft())
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            continue
        url = parts.path + (f"?{parts.query}" if parts.query else "")
        if url in pages or NOT_WALKED.search(parts.path) or NOT_WALKED_QUERY.search(parts.query):
            continue
        pattern = re.sub(r"\d+", "<n>", parts.path)
        if per_pattern[pattern] >= PER_PATTERN:
            continue
        per_pattern[pattern] += 1
        response = client.get(url)
        if response.status_code in (301, 302, 303, 307, 308):  # a landing page sends each role on
            pages[url] = (response.status_code, None)
            per_pattern[pattern] -= 1
            queue.append(response.headers["Location"])
            continue
        if response.status_code != 200 or "html" not in response.content_type:
            pages[url] = (response.status_code, None)
            continue
        page = PageText()
        page.feed(response.get_data(as_text=True))
        pages[url] = (200, page)
        queue.extend(link.split("#")[0] for link in page.links)
    return pages


@pytest.fixture(scope="module")
def demo_app(app):
    """The session's app with the demo seeded once for this module; emptied afterwards."""
    with app.app_context():
        demo.seed(db.session, app.appbuilder.sm)
        data = data_strings()
        db.session.remove()
    yield app, data
    from portal.services.ledger import reset_account_cache

    with app.app_context():
        db.session.remove()
        tables = [t.name for t in db.metadata.sorted_tables if t.name not in KEEP_TABLES]
        with db.engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        reset_account_cache()


#: Pages a login's walk must read (so that a page dropping out of the walk is noticed): Admin's
#: Flask-AppBuilder security pages.
MUST_READ = {"admin": ("/users/list/", "/users/show/", "/users/edit/", "/users/add", "/users/userinfo/",
                       "/roles/list/", "/roles/show/", "/roles/edit/", "/roles/add", "/groups/list/", "/groups/add",
                       "/permissions/list/", "/viewmenus/list/", "/permissionviews/list/",
                       "/userstatschartview/chart/")}

LOGINS = [(username, password) for username, _role, password in demo.STAFF] + [
    ("customer1@demo.cashback.local", demo.CUSTOMER_PASSWORD),  # buys, withdraws, a referrer
    ("customer5@demo.cashback.local", demo.CUSTOMER_PASSWORD),  # a big payout in review, claims
]


@pytest.mark.parametrize("username,password", LOGINS, ids=[u.split("@")[0] for u, _ in LOGINS])
def test_every_page_reads_in_russian(demo_app, username, password):
    app, data = demo_app
    # a code that is also what people typed (a role's name "Finance" and a login's first name) is data
    codes = frozenset(code for table in labels.ENUMS.values() for code in table) - set(data)
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "ru"
    response = client.post("/login/", data={"username": username, "password": password})
    assert response.status_code == 302, f"login of {username}: {response.status_code}"
    pages = walk(client, [response.headers["Location"], "/"])
    assert len(pages) < MAX_PAGES, "the walk stopped early: raise MAX_PAGES"
    read = {url: page for url, (status, page) in pages.items() if page is not None}
    assert len(read) >= 5, f"{username} reached only {sorted(pages)}"
    unread = [path for path in MUST_READ.get(username, ()) if not any(url.startswith(path) for url in read)]
    assert not unread, f"the walk of {username} did not read {unread}"
    errors = {url: status for url, (status, page) in pages.items() if status >= 500}
    assert not errors, errors
    wrong: dict[str, list[str]] = {}
    for url, page in sorted(read.items()):
        problems = sorted({f"{problem} in {text[:100]!r}" for text in page.texts
                           for problem in findings(text, data, codes)})
        if problems:
            wrong[url] = problems
    report = "\n".join(f"{url}:\n  " + "\n  ".join(problems) for url, problems in wrong.items())
    assert not wrong, f"{len(wrong)} of {len(read)} pages of {username} are not Russian:\n{report}"
