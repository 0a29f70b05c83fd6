"""WebMoney X2/X3 emulated over :class:`plugins.sandbox.Sandbox`.

``python -m payment_providers.webmoney.sandbox [--port 8768] [--wmid …] [--key …]`` serves it
until Ctrl+C. It answers WebMoney's classic paths (``/asp/XMLTrans.asp``,
``/asp/XMLOperations.asp``) with ``w3s.response`` XML in Windows-1251, checks the sandbox-only
test signature (HMAC-SHA256 standing in for WMSigner; a bad one is retval -14), enforces a
strictly increasing ``reqn`` per WMID (102), keeps its own operations by ``tranid`` (a repeat
is 103 and moves nothing), answers X3 by ``tranid``, charges the 0.8 % ``comiss`` and honours
magic purses that force every documented retval. The Light (``…Cert.asp``) paths need a TLS
client certificate, which this plain-HTTP sandbox cannot check: they answer 404.
"""
from __future__ import annotations

import argparse
import decimal
import hmac
import itertools
import logging
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar

from plugins.sandbox import (
    FAILED,
    PENDING,
    REVERSED,
    SUCCEEDED,
    Sandbox,
    SandboxRequest,
    SandboxResponse,
    Transfer,
)

from .client import (
    CLASSIC_PATHS,
    DATE_FORMAT,
    DOCUMENTED_RETVALS,
    ENCODING,
    PURSE_RE,
    RETVAL_REQN,
    RETVAL_TRANID_USED,
    TestSigner,
    x2_signing_string,
    x3_signing_string,
)
from .provider import fee_for

__all__ = ["MAGIC_PURSES", "WebMoneySandbox", "magic_purse", "main"]

_AMOUNT_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?\Z")
_DESC_MAX = 255          # [?] length limit of desc
_PCODE_MAX = 255         # [?]
_TRANID_MAX = 2**32 - 1  # [?] "unsigned integer"

RETDESC: Mapping[int, str] = {
    0: "OK", -100: "bad command format", -110: "request from a non-registered IP",
    -1: "bad reqn", -2: "bad sign", -3: "bad tranid", -4: "bad pursesrc", -5: "bad pursedest",
    -6: "bad amount", -7: "bad desc", -8: "pcode too long", -9: "pcode required for period",
    -10: "pcode without period", -11: "bad wminvid", -12: "WMID not registered",
    -14: "signature check failed", -15: "bad wmid", 102: "reqn is not greater than the last one",
    103: "a transfer with this tranid was already executed", 110: "no access to the interface",
    111: "purse not owned by the signer and no trust", 4: "internal error", 15: "internal error",
    19: "internal error", 23: "internal error", 5: "sender WMID not found",
    6: "correspondent not found", 7: "recipient purse not found", 11: "sender purse not found",
    13: "amount must be greater than 0", 17: "insufficient funds", 18: "wmtranid not found",
    20: "wrong protection code", 21: "invoice error", 22: "invoice error", 25: "invoice error",
    26: "same purse on both sides", 29: "purse types differ",
    30: "purse does not accept direct transfers", 32: "payer must fill personal data",
    34: "payer must fill personal data", 35: "payer not authorized by the correspondent",
    58: "recipient purse limit exceeded", 72: "payer's service suspended",
    73: "recipient's service suspended", 74: "recipient's service suspended",
}


def magic_purse(retval: int, letter: str = "P") -> str:
    """The purse that forces ``retval``: ``P9000000000NN`` (positive), ``P9100000000NN`` (negative)."""
    return f"{letter}{'91' if retval < 0 else '90'}{abs(retval):010d}"


#: Magic recipient purses -> the retval they force (every documented refusal; 0, 102 and 103
#: come from behaviour: a normal purse, an old reqn, a repeated tranid).
MAGIC_PURSES: Mapping[str, int] = {
    magic_purse(code): code for code in sorted(DOCUMENTED_RETVALS)
    if code not in (0, RETVAL_REQN, RETVAL_TRANID_USED)}


def _xml(retval: int, reqn: str, body: ET.Element | None = None, retdesc: str | None = None
         ) -> SandboxResponse:
    root = ET.Element("w3s.response")
    for tag, text in (("reqn", reqn), ("retval", str(retval)),
                      ("retdesc", retdesc if retdesc is not None else RETDESC.get(retval, ""))):
        ET.SubElement(root, tag).text = text
    if body is not None:
        root.append(body)
    return SandboxResponse(200, ET.tostring(root, encoding=ENCODING, xml_declaration=True),
                           f"text/xml; charset={ENCODING}")


class WebMoneySandbox(Sandbox):
    """WebMoney for one WMID owning one purse, signing with the test signer's key."""

    name: ClassVar[str] = "webmoney"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, wmid: str = "100000000001",
                 purse: str = "P100000000001", key: str = "sandbox-wm-key",
                 fee_percent: Decimal = Decimal("0.8"), fee_min: Decimal = Decimal("0.01"),
                 fee_max: Decimal | None = None, fee_rounding: str = decimal.ROUND_HALF_UP,
                 **options: Any) -> None:
        options.setdefault("settle_after", None)  # X2 is synchronous: nothing stays pending
        super().__init__(host, port, **options)
        self.wmid, self.purse, self.key = wmid, purse, key
        self._signer = TestSigner(key)
        self._fee = dict(percent=fee_percent, minimum=fee_min, maximum=fee_max,
                         rounding=fee_rounding)
        self._lock = threading.Lock()
        self._last_reqn: dict[str, int] = {}
        self._wmtranids = itertools.count(900000001)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._last_reqn.clear()

    def fee(self, amount: Decimal) -> Decimal:
        return fee_for(amount, **self._fee)  # type: ignore[arg-type]

    # -- protocol --
    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if request.path not in CLASSIC_PATHS.values():
            return SandboxResponse(404, b"<html><body>404 Not Found</body></html>", "text/html")
        if request.method != "POST":
            return SandboxResponse(405, b"<html><body>405</body></html>", "text/html")
        try:
            root = ET.fromstring(request.body)
        except ET.ParseError:
            return _xml(-100, "")
        if root.tag != "w3s.request":
            return _xml(-100, "")

        def text(parent: ET.Element | None, tag: str) -> str:
            found = parent.find(tag) if parent is not None else None
            return (found.text or "").strip() if found is not None else ""

        reqn, wmid, sign = text(root, "reqn"), text(root, "wmid"), text(root, "sign")
        if not re.fullmatch(r"[0-9]{1,20}", reqn):
            return _xml(-1, reqn)
        if not re.fullmatch(r"[0-9]{12}", wmid):
            return _xml(-15, reqn)
        if wmid != self.wmid:
            return _xml(-12, reqn)
        if not re.fullmatch(r"[0-9a-fA-F]{64}", sign):
            return _xml(-2, reqn)
        if request.path == CLASSIC_PATHS["x2"]:
            trans = root.find("trans")
            fields = {tag: text(trans, tag) for tag in (
                "tranid", "pursesrc", "pursedest", "amount", "period", "pcode", "desc",
                "wminvid", "onlyauth")}
            if trans is not None and trans.find("desc") is not None:
                fields["desc"] = trans.find("desc").text or ""  # type: ignore[union-attr]
            signed = x2_signing_string(reqn, fields["tranid"], fields["pursesrc"],
                                       fields["pursedest"], fields["amount"], fields["period"],
                                       fields["pcode"], fields["desc"], fields["wminvid"])
        else:
            query = root.find("getoperations")
            fields = {tag: text(query, tag) for tag in (
                "purse", "wmtranid", "tranid", "wminvid", "orderid", "datestart", "datefinish")}
            signed = x3_signing_string(fields["purse"], reqn)
        if not hmac.compare_digest(sign.lower(), self._signer.sign(signed)):
            return _xml(-14, reqn)
        with self._lock:  # reqn strictly increasing per WMID, across X2 and X3
            if int(reqn) <= self._last_reqn.get(wmid, 0):
                return _xml(RETVAL_REQN, reqn)
            self._last_reqn[wmid] = int(reqn)
            if request.path == CLASSIC_PATHS["x2"]:
                return self._x2(reqn, fields)
            return self._x3(reqn, fields)

    def _x2(self, reqn: str, f: Mapping[str, str]) -> SandboxResponse:
        if not re.fullmatch(r"[0-9]{1,10}", f["tranid"]) or int(f["tranid"]) > _TRANID_MAX:
            return _xml(-3, reqn)
        if not PURSE_RE.match(f["pursesrc"]):
            return _xml(-4, reqn)
        if not PURSE_RE.match(f["pursedest"]):
            return _xml(-5, reqn)
        if not _AMOUNT_RE.match(f["amount"]):
            return _xml(-6, reqn)
        if len(f["desc"]) > _DESC_MAX:
            return _xml(-7, reqn)
        if len(f["pcode"]) > _PCODE_MAX:
            return _xml(-8, reqn)
        if not re.fullmatch(r"[0-9]{1,3}", f["period"] or "0"):
            return _xml(-9, reqn)
        period = int(f["period"] or "0")
        if period > 0 and not f["pcode"]:
            return _xml(-9, reqn)
        if period == 0 and f["pcode"]:
            return _xml(-10, reqn)
        if not re.fullmatch(r"[0-9]{1,20}", f["wminvid"] or "0"):
            return _xml(-11, reqn)
        if f["pursesrc"] != self.purse:
            return _xml(111, reqn)
        handle = f["tranid"]
        if self.ledger.get(handle) is not None:
            return _xml(RETVAL_TRANID_USED, reqn)
        amount, dest = Decimal(f["amount"]), f["pursedest"]
        if amount <= 0:
            return _xml(13, reqn)
        if dest in MAGIC_PURSES:
            return _xml(MAGIC_PURSES[dest], reqn)
        if dest == f["pursesrc"]:
            return _xml(26, reqn)
        if dest[0] in "CD":
            return _xml(30, reqn)
        if dest[0] != f["pursesrc"][0]:
            return _xml(29, reqn)
        fee = self.fee(amount)
        if self.ledger.balance < amount + fee:
            return _xml(17, reqn)
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        transfer, _ = self.ledger.record(
            handle, amount=amount, currency="RUB", account=dest, fee=fee, outcome=SUCCEEDED,
            immediate=True, extra={"wmtranid": str(next(self._wmtranids)), "desc": f["desc"],
                                   "pursesrc": f["pursesrc"], "period": period,
                                   "datecrt": now.strftime(DATE_FORMAT)})
        return _xml(0, reqn, self.operation_xml(transfer))

    def _x3(self, reqn: str, f: Mapping[str, str]) -> SandboxResponse:
        if not PURSE_RE.match(f["purse"]):
            return _xml(-4, reqn)
        if f["purse"] != self.purse:
            return _xml(111, reqn)
        try:
            start = datetime.strptime(f["datestart"], DATE_FORMAT)
            finish = datetime.strptime(f["datefinish"], DATE_FORMAT)
        except ValueError:
            return _xml(-100, reqn, retdesc="datestart and datefinish are required")
        operations = ET.Element("operations")
        for transfer in self.ledger.transfers():
            created = datetime.strptime(transfer.extra["datecrt"], DATE_FORMAT)
            if not start <= created <= finish:
                continue
            if f["tranid"] and transfer.handle != f["tranid"]:
                continue
            if f["wmtranid"] and transfer.extra["wmtranid"] != f["wmtranid"]:
                continue
            operations.append(self.operation_xml(transfer))
        operations.set("cnt", str(len(operations)))
        return _xml(0, reqn, operations)

    def operation_xml(self, transfer: Transfer) -> ET.Element:
        """The ``operation`` element of ``transfer``. A reversed transfer reads opertype 12
        ("protected, refunded") [?: how WebMoney shows a returned direct transfer]."""
        opertype = {SUCCEEDED: 0, PENDING: 4, REVERSED: 12, FAILED: 12}[transfer.status]
        operation = ET.Element("operation", id=str(transfer.extra["wmtranid"]),
                               ts=str(transfer.extra["wmtranid"]))
        for tag, value in (("pursesrc", transfer.extra["pursesrc"]),
                           ("pursedest", transfer.account),
                           ("amount", format(transfer.amount, "f")),
                           ("comiss", format(transfer.fee, "f")), ("opertype", opertype),
                           ("period", transfer.extra["period"]), ("wminvid", 0), ("orderid", 0),
                           ("tranid", transfer.handle), ("desc", transfer.extra["desc"]),
                           ("datecrt", transfer.extra["datecrt"]),
                           ("dateupd", transfer.updated_at.strftime(DATE_FORMAT))):
            ET.SubElement(operation, tag).text = str(value)
        return operation

    # -- protocol-shaped faults --
    def error_response(self, status: int) -> SandboxResponse:
        return SandboxResponse(status, b"<html><body>Server Error</body></html>", "text/html")

    def rate_limited_response(self, retry_after: int) -> SandboxResponse:
        # [?] WebMoney documents no rate limit answer; a front-end 429 is emulated.
        return SandboxResponse(429, b"<html><body>Too Many Requests</body></html>", "text/html",
                               headers={"Retry-After": str(retry_after)})


def main(argv: list[str] | None = None) -> None:
    """Serve the WebMoney X2/X3 sandbox until Ctrl+C."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8768)
    parser.add_argument("--wmid", default="100000000001", help="the signing WMID (12 digits)")
    parser.add_argument("--purse", default="P100000000001", help="the WMID's P purse")
    parser.add_argument("--key", default="sandbox-wm-key", help="test signer HMAC key")
    parser.add_argument("--balance", default="100000.00", help="starting balance of the purse")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sandbox = WebMoneySandbox(args.host, args.port, wmid=args.wmid, purse=args.purse,
                              key=args.key, balance=Decimal(args.balance))
    sandbox.start()  # bind first, so --port 0 prints the real port
    print(f"WebMoney X2/X3 sandbox on {sandbox.url} ({CLASSIC_PATHS['x2']}, "
          f"{CLASSIC_PATHS['x3']}): WMID {args.wmid!r}, purse {args.purse!r}, test signer key "
          f"{args.key!r} (HMAC-SHA256 of the signing string in Windows-1251); magic purses "
          f"{magic_purse(17)} (retval 17) … see MAGIC_PURSES", flush=True)
    sandbox.serve()


if __name__ == "__main__":
    main()
