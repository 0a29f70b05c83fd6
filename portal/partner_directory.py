"""A local CPA partner directory: the partner-login protocol over HTTP, for the demo and the tests.

It speaks the protocol of ``docs/partner-directory.md`` (the client is
``portal.services.partners.PartnerDirectory``) on top of the provider sandboxes' server
(:class:`plugins.sandbox.Sandbox`), so it has their fault switchboard too: ``down``,
``latency``, ``errors``, ``garble`` (``POST /__sandbox__/faults``, or :meth:`inject`)::

    POST /api/v1/auth                          {"login": "...", "password": "..."}
         200 {"partner_id", "email", "name", "locale", "cabinet_url", "referral_code"}
         401 {"error": "invalid_credentials"}
    GET  /api/v1/partners/by-referral/<code>   200 the partner | 404 {"error": "not_found"}
    GET  /cabinet/<partner_id>                 the partner's cabinet (a placeholder HTML page)

Every ``/api/`` request needs ``Authorization: Bearer <token>`` (403 otherwise).  A login
is the partner's login name or e-mail (any case).  Serve it with
``cashback partner-directory --port 8790`` (``portal/cli_partner.py``)::

    with LocalPartnerDirectory(token="t") as directory:     # port 0: a free port
        directory.add_partner("P-2", login="bob", password="pw", email="bob@x.test")
        config["PARTNER_DIRECTORY_URL"] = directory.url
"""
from __future__ import annotations

import html
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from plugins.sandbox import Sandbox, SandboxRequest, SandboxResponse

__all__ = ["DEMO_PARTNERS", "DEFAULT_TOKEN", "LocalPartnerDirectory", "Partner"]

#: The service token of the demo (``CASHBACK_PARTNER_DIRECTORY_TOKEN``); not a secret.
DEFAULT_TOKEN = "partner-directory-dev-token"


@dataclass(frozen=True)
class Partner:
    """A partner account of the CPA platform, as the directory keeps it."""

    partner_id: str
    login: str
    password: str
    email: str
    name: str = ""
    locale: str = "ru"
    referral_code: str | None = None
    #: Empty: the directory's own placeholder page ``/cabinet/<partner_id>``.
    cabinet_url: str = ""


#: Seeded partners; the first is the demo login printed by ``scripts/demo.sh``.
DEMO_PARTNERS = (
    Partner("P-1001", "partner-demo", "partner-demo", "partner@demo.cashback.local", "Павел Партнёров", "ru",
            referral_code="cpapartner"),
    Partner("P-1002", "webmaster-en", "webmaster-demo", "webmaster@demo.cashback.local", "Wendy Webmaster",
            "en", referral_code="cpawebmstr"),
    # demo customer 20, linked to this partner by ``cashback seed-demo`` (portal.services.partners)
    Partner("P-1020", "lucas-partner", "partner-demo", "customer20@demo.cashback.local", "Lucas Martin", "en",
            referral_code="cpamartn23"),
)


class LocalPartnerDirectory(Sandbox):
    """The partner directory on ``http://127.0.0.1:<port>`` (port 0: a free one)."""

    name: ClassVar[str] = "partner-directory"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str = DEFAULT_TOKEN,
                 partners: Iterable[Partner] = DEMO_PARTNERS) -> None:
        super().__init__(host, port, settle_after=None)
        self.token = token
        self._lock = threading.Lock()
        self._partners: dict[str, Partner] = {}
        #: ``(method, path)`` of every protocol request served, oldest first (tests read it).
        self.calls: list[tuple[str, str]] = []
        for partner in partners:
            self._partners[partner.partner_id] = partner

    # -- the partner list --
    def add_partner(self, partner_id: str, *, login: str, password: str, email: str, **fields: Any) -> Partner:
        """Add or replace a partner."""
        partner = Partner(partner_id, login, password, email, **fields)
        with self._lock:
            self._partners[partner_id] = partner
        return partner

    def remove_partner(self, partner_id: str) -> None:
        with self._lock:
            self._partners.pop(partner_id, None)

    def update_partner(self, partner_id: str, **changes: Any) -> Partner:
        with self._lock:
            partner = self._partners[partner_id] = replace(self._partners[partner_id], **changes)
        return partner

    def partners(self) -> list[Partner]:
        with self._lock:
            return list(self._partners.values())

    def cabinet_url(self, partner: Partner) -> str:
        return partner.cabinet_url or f"{self.url}/cabinet/{partner.partner_id}"

    def partner_json(self, partner: Partner) -> dict[str, Any]:
        return {"partner_id": partner.partner_id, "email": partner.email, "name": partner.name,
                "locale": partner.locale, "cabinet_url": self.cabinet_url(partner),
                "referral_code": partner.referral_code}

    # -- the protocol --
    def _find(self, login: str) -> Partner | None:
        wanted = login.strip().lower()
        with self._lock:
            return next((p for p in self._partners.values()
                         if wanted and wanted in (p.login.lower(), p.email.lower())), None)

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        path = request.path.rstrip("/")
        if request.method == "GET" and path.startswith("/cabinet/"):
            return self._cabinet_page(path[len("/cabinet/"):])
        if request.headers.get("Authorization", "") != f"Bearer {self.token}":
            return SandboxResponse.json(403, {"error": "bad_service_token"})
        self.calls.append((request.method, path))
        if request.method == "POST" and path == "/api/v1/auth":
            try:
                data = request.json()
                login, password = str(data["login"]), str(data["password"])
            except (ValueError, KeyError, TypeError):
                return SandboxResponse.json(400, {"error": "bad_request"})
            partner = self._find(login)
            if partner is None or not password or password != partner.password:
                return SandboxResponse.json(401, {"error": "invalid_credentials"})
            return SandboxResponse.json(200, self.partner_json(partner))
        prefix = "/api/v1/partners/by-referral/"
        if request.method == "GET" and path.startswith(prefix):
            code = path[len(prefix):]
            with self._lock:
                partner = next((p for p in self._partners.values() if code and p.referral_code == code), None)
            if partner is None:
                return SandboxResponse.json(404, {"error": "not_found"})
            return SandboxResponse.json(200, self.partner_json(partner))
        return SandboxResponse.json(404, {"error": "not_found"})

    def _cabinet_page(self, partner_id: str) -> SandboxResponse:
        with self._lock:
            partner = self._partners.get(partner_id)
        if partner is None:
            return SandboxResponse(404, b"no such partner", "text/plain; charset=utf-8")
        body = (f"<!doctype html><title>Partner cabinet</title><h1>Partner cabinet: "
                f"{html.escape(partner.name or partner.login)}</h1><p>Statistics and withdrawals of "
                f"partner {html.escape(partner.partner_id)} (local partner directory).</p>")
        return SandboxResponse(200, body.encode(), "text/html; charset=utf-8")


def main(argv: list[str] | None = None) -> None:
    """Serve the local partner directory until Ctrl+C (``python -m portal.partner_directory``)."""
    import argparse

    parser = argparse.ArgumentParser(description="Local CPA partner directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the service token clients must send")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.token)


def serve(host: str, port: int, token: str) -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    directory = LocalPartnerDirectory(host, port, token=token)
    print(f"Partner directory on http://{host}:{port} (service token {token!r}); partner logins: "
          + ", ".join(f"{p.login} / {p.password} ({p.email})" for p in directory.partners()), flush=True)
    directory.serve()


if __name__ == "__main__":
    main()
