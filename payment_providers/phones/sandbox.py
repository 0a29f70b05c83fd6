"""Local emulator of YooKassa's mass-payout protocol for mobile top-ups (``makeDeposition``,
``balance``, ``errorDepositionNotification``) over :class:`plugins.sandbox.Sandbox`.

``python -m payment_providers.phones.sandbox [--port 9094]`` serves it until Ctrl+C with the
certificate and agent ids the ``mts`` / ``megafon`` / ``beeline`` providers use by default.

The sandbox signs with :class:`~payment_providers.phones.client.TestSigner` envelopes (never real
PKCS#7): requests signed with an unknown certificate get error 53, an expired one 55, a bad
signature 51, a broken envelope 50, exactly where the real service checks its certificates.
"""
from __future__ import annotations

import argparse
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar

from plugins.sandbox import (
    FAILED,
    PENDING,
    REVERSED,
    SUCCEEDED,
    LedgerConflict,
    Sandbox,
    SandboxRequest,
    SandboxResponse,
    Transfer,
)

from .client import (
    BALANCE_PATH,
    CONTENT_TYPE,
    DEPOSITION_PATH,
    ERROR_CODES,
    ProtocolError,
    SignatureError,
    _envelope,
    parse_xml,
    request_dt,
    verify_envelope,
)

__all__ = ["DEFAULT_AGENTS", "MAGIC_PENDING", "PORTED", "PhoneSandbox", "magic_number", "main"]

#: agentId -> the operator that gateway tops up (None: any). One gateway per operator is how
#: the sandbox learns which operator the customer picked; the real service routes by number.
DEFAULT_AGENTS: Mapping[str, str | None] = {"250001": "mts", "250002": "megafon",
                                            "250003": "beeline"}
#: Ported numbers (dstAccount -> the operator that serves it now), whatever the DEF prefix says.
PORTED: Mapping[str, str] = {
    "79161112233": "megafon",   # an MTS block (916), ported to MegaFon
    "79031112233": "mts",       # a Beeline block (903), ported to MTS
    "79261112233": "beeline",   # a MegaFon block (926), ported to Beeline
}
#: ``7999000CCCC``: magic numbers force error ``CCCC`` (any documented code).
_MAGIC = re.compile(r"^7999000(\d{4})$")
#: This magic number stays "in progress" (status 1) for ever.
MAGIC_PENDING = "79990000001"
#: Request-level errors: answered at once, nothing recorded (a replay is judged again).
_REQUEST_LEVEL = frozenset({10, 11, 12, 14, 15, 16, 17, 18, 19, 21, 26, 30, 50, 51, 53, 55})
#: Errors the operator gives after a while (status 1 first).
_LATE = frozenset({31, 48, 110})
_ACCOUNT_RE = re.compile(r"^79\d{9}$")
_AMOUNT_RE = re.compile(r"^\d{1,9}\.\d{2}$")
_MIN = Decimal("1.00")


def magic_number(code: int) -> str:
    """The dstAccount that forces error ``code``."""
    return f"7999000{code:04d}"


def _now() -> str:
    return request_dt(datetime.now(timezone.utc))


class PhoneSandbox(Sandbox):
    """YooKassa mass payouts for phones, as seen by a set of gateways (agent ids)."""

    name: ClassVar[str] = "phones"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 agents: Mapping[str, str | None] = DEFAULT_AGENTS,
                 certificates: Mapping[str, str] | None = None,
                 expired_certificates: Iterable[str] = (),
                 server_certificate: str = "deposit",
                 server_secret: str = "sandbox-deposit-secret",
                 currency_code: str = "643", ported: Mapping[str, str] = PORTED,
                 **options: Any) -> None:
        super().__init__(host, port, **options)
        self.agents = dict(agents)
        self.certificates = dict(certificates if certificates is not None
                                 else {"/business/cashback-sandbox": "sandbox-signing-secret"})
        self.expired_certificates = set(expired_certificates)
        self.server_certificate, self._server_secret = server_certificate, server_secret
        self.currency_code = currency_code
        self.ported = dict(ported)

    # -- wire helpers --
    def _signed(self, element: ET.Element) -> SandboxResponse:
        document = ET.tostring(element, encoding="UTF-8", xml_declaration=True)
        return SandboxResponse(200, _envelope(self.server_certificate, document,
                                              self._server_secret), CONTENT_TYPE)

    def _answer(self, order_id: str, status: str, error: int | None = None,
                message: str = "") -> SandboxResponse:
        attributes = {"status": status, "processedDT": _now(), "clientOrderId": order_id}
        if error is not None:
            attributes["error"] = str(error)
        if message:
            attributes["techMessage"] = message
        return self._signed(ET.Element("makeDepositionResponse", attributes))

    def _transfer_answer(self, transfer: Transfer) -> SandboxResponse:
        if transfer.status == PENDING:
            return self._answer(transfer.handle, "1")
        if transfer.status == SUCCEEDED:
            return self._answer(transfer.handle, "0")
        error = int(transfer.error) if transfer.error and transfer.error.isdigit() else (
            110 if transfer.status == REVERSED else 45)
        return self._answer(transfer.handle, "3", error, f"error {error}")

    # -- protocol --
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if request.method != "POST" or request.path not in (DEPOSITION_PATH, BALANCE_PATH):
            return SandboxResponse(404, b"not found", "text/plain")
        if CONTENT_TYPE not in (request.headers.get("Content-Type") or ""):
            return SandboxResponse(415, b"expected application/pkcs7-mime", "text/plain")
        root = "makeDepositionRequest" if request.path == DEPOSITION_PATH else "balanceRequest"
        order_id = ""
        try:
            _certificate, document = verify_envelope(request.body, self.certificates,
                                                     self.expired_certificates)
        except SignatureError as exc:
            return self._answer(order_id, "3", exc.code, str(exc))
        try:
            element = parse_xml(document, root)
        except ProtocolError as exc:
            return self._answer(order_id, "3", 10, str(exc))
        order_id = element.get("clientOrderId") or ""
        agent = element.get("agentId") or ""
        if agent not in self.agents:
            return self._answer(order_id, "3", 11, "unknown agentId")
        if not re.fullmatch(r"[\w.:-]{1,64}", order_id):
            return self._answer(order_id, "3", 18, "clientOrderId")
        try:
            datetime.fromisoformat(element.get("requestDT") or "")
        except ValueError:
            return self._answer(order_id, "3", 15, "requestDT")
        if root == "balanceRequest":
            return self._signed(ET.Element("balanceResponse", {
                "status": "0", "processedDT": _now(), "clientOrderId": order_id,
                "balance": format(self.ledger.balance, "f")}))
        return self._deposit(element, order_id, self.agents[agent])

    def _deposit(self, element: ET.Element, order_id: str, operator: str | None
                 ) -> SandboxResponse:
        account, amount_text = element.get("dstAccount") or "", element.get("amount") or ""
        if element.get("currency") != self.currency_code:
            return self._answer(order_id, "3", 14, f"currency must be {self.currency_code}")
        if not _ACCOUNT_RE.match(account):
            return self._answer(order_id, "3", 16, "dstAccount: 79XXXXXXXXX")
        if not _AMOUNT_RE.match(amount_text) or Decimal(amount_text) <= 0:
            return self._answer(order_id, "3", 17, "amount")
        contract = element.get("contract") or ""
        if not 0 < len(contract) <= 128:
            return self._answer(order_id, "3", 19, "contract")
        if element.findtext("paymentParams/pof_offerAccepted") != "1":
            return self._answer(order_id, "3", 10, "paymentParams/pof_offerAccepted=1 required")
        amount = Decimal(amount_text)
        existing = self.ledger.get(order_id, read=True)
        if existing is not None:
            if existing.extra.get("contract") != contract or existing.account != account \
                    or existing.amount != amount:
                return self._answer(order_id, "3", 26, "clientOrderId used with other data")
            return self._transfer_answer(existing)

        outcome, error, immediate = SUCCEEDED, None, False
        magic = _MAGIC.match(account)
        real_operator = self.ported.get(account)
        if account == MAGIC_PENDING:
            outcome = PENDING
        elif magic is not None and int(magic.group(1)) in ERROR_CODES:
            code = int(magic.group(1))
            if code in _REQUEST_LEVEL:
                return self._answer(order_id, "3", code, f"forced error {code}")
            outcome, error, immediate = FAILED, str(code), code not in _LATE
        elif operator is not None and real_operator is not None and real_operator != operator:
            outcome, error, immediate = FAILED, "42", True
        elif amount < _MIN:
            outcome, error, immediate = FAILED, "46", True
        try:
            transfer, _created = self.ledger.record(
                order_id, amount=amount, currency="RUB", account=account, outcome=outcome,
                error=error, immediate=immediate, extra={"contract": contract})
        except LedgerConflict:
            return self._answer(order_id, "3", 26, "clientOrderId used with other data")
        if transfer.error == "42" and real_operator is not None:
            return self._answer(order_id, "3", 42,
                                f"number {account} is served by {real_operator}, not {operator} "
                                "(ported)")
        if transfer.error == "insufficient_funds":
            return self._answer(order_id, "3", 45, "insufficient payout balance")
        return self._transfer_answer(transfer)

    # -- protocol-shaped faults and notifications --
    def error_response(self, status: int) -> SandboxResponse:
        return SandboxResponse(status, b"Internal Server Error", "text/plain")

    def rate_limited_response(self, retry_after: int) -> SandboxResponse:
        return SandboxResponse(429, b"Too Many Requests", "text/plain",
                               {"Retry-After": str(retry_after)})

    def reverse(self, handle: str, error: str | None = None) -> Transfer:
        """The operator returns a succeeded top-up (error 110 unless given, e.g. ``"31"``)."""
        return super().reverse(handle, error or "110")

    def build_callback(self, transfer: Transfer) -> tuple[Mapping[str, str], bytes]:
        """The ``errorDepositionNotificationRequest`` about ``transfer`` (its error, else 110)."""
        error = transfer.error if transfer.error and transfer.error.isdigit() else "110"
        element = ET.Element("errorDepositionNotificationRequest", {
            "clientOrderId": transfer.handle, "requestDT": _now(), "dstAccount": transfer.account,
            "amount": format(transfer.amount, "f"), "currency": self.currency_code,
            "error": error})
        document = ET.tostring(element, encoding="UTF-8", xml_declaration=True)
        return ({"Content-Type": CONTENT_TYPE},
                _envelope(self.server_certificate, document, self._server_secret))

    def notify_reversal(self, handle: str, error: int = 110, url: str | None = None) -> int:
        """The operator returns the top-up, and YooKassa tells us: reverse + notification."""
        self.reverse(handle, str(error))
        return self.fire_callback(handle, url)


def main(argv: list[str] | None = None) -> None:
    """Serve the phone-payout sandbox until Ctrl+C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9094)
    parser.add_argument("--agent-id", action="append", default=None, metavar="ID[=OPERATOR]",
                        help="accepted agentId, optionally bound to mts/megafon/beeline "
                             "(repeatable; default: 250001=mts 250002=megafon 250003=beeline)")
    parser.add_argument("--certificate-name", action="append", default=None,
                        metavar="NAME[=SECRET]",
                        help="accepted client certificate (repeatable; default "
                             "/business/cashback-sandbox=sandbox-signing-secret)")
    parser.add_argument("--currency-code", default="643",
                        help="643, or 10643 like the test gateway")
    parser.add_argument("--settle-after", type=float, default=5.0)
    args = parser.parse_args(argv)
    agents: dict[str, str | None] = dict(DEFAULT_AGENTS)
    if args.agent_id:
        agents = {}
        for item in args.agent_id:
            agent, _, operator = item.partition("=")
            agents[agent] = operator or None
    certificates = {"/business/cashback-sandbox": "sandbox-signing-secret"}
    if args.certificate_name:
        certificates = {}
        for item in args.certificate_name:
            name, _, secret = item.partition("=")
            certificates[name] = secret or "sandbox-signing-secret"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    print(f"Phone payout sandbox (YooKassa makeDeposition) on http://{args.host}:{args.port}"
          f"{DEPOSITION_PATH}", flush=True)
    print(f"  agentId -> operator: {agents}", flush=True)
    print(f"  certificates: {sorted(certificates)}; currency {args.currency_code}", flush=True)
    print(f"  magic numbers 7999000CCCC force error CCCC; {MAGIC_PENDING} stays in progress; "
          f"ported: {dict(PORTED)}", flush=True)
    PhoneSandbox(args.host, args.port, agents=agents, certificates=certificates,
                 currency_code=args.currency_code, settle_after=args.settle_after).serve()


if __name__ == "__main__":
    main()
