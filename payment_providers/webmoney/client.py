"""WebMoney XML interfaces X2 (transfer) and X3 (operations by ``tranid``): the signers, the
wire format, the retval table and the HTTP client (see the package docstring).

Every call has explicit ``(connect, read)`` timeouts and no automatic retries: a repeat after
the request left is a new attempt, and only the X2 ``tranid`` makes it safe.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

import requests
from requests.adapters import HTTPAdapter

from plugins import ErrorCode, PayoutStatus, Result
from plugins.wire import transport_failure, retry_after as _retry_after

__all__ = [
    "ENCODING",
    "LIGHT_PATHS",
    "CLASSIC_PATHS",
    "PURSE_RE",
    "RETVALS",
    "RETRY_SAME_TRANID",
    "LightCertSigner",
    "Operation",
    "Signer",
    "TestSigner",
    "WMID_RE",
    "WebMoneyClient",
    "X2Answer",
    "amount_text",
    "build_x2",
    "build_x3",
    "parse_response",
    "x2_signing_string",
    "x3_signing_string",
]

#: Signed text and request bodies are Windows-1251 [doc].
ENCODING = "windows-1251"
#: Purse = type letter + 12 digits [doc]; WMID = 12 digits.
PURSE_RE = re.compile(r"[A-Z][0-9]{12}\Z")
WMID_RE = re.compile(r"[0-9]{12}\Z")
#: X3 date format [doc].
DATE_FORMAT = "%Y%m%d %H:%M:%S"

#: Interface paths: classic (WMSigner / test signer) and "Light" (X.509 client certificate) [doc].
CLASSIC_PATHS: Mapping[str, str] = {"x2": "/asp/XMLTrans.asp", "x3": "/asp/XMLOperations.asp"}
LIGHT_PATHS: Mapping[str, str] = {"x2": "/asp/XMLTransCert.asp",
                                  "x3": "/asp/XMLOperationsCert.asp"}

# --------------------------------------------------------------------------- retvals

#: X2 retval -> our code, for every documented refusal (reference §3, mapped per §5). The
#: status follows from the code (:attr:`ErrorCode.default_status`). Not in this table:
#: 0 (done), 102 (reqn: the client repeats with a new reqn, same tranid), 103 (tranid used: the
#: client reads X3) and :data:`RETRY_SAME_TRANID` (internal errors: unknown). Any retval not
#: documented at all is ``unknown`` too: we cannot tell whether money moved.
RETVALS: Mapping[int, ErrorCode] = {
    # request format: a bug or a misconfiguration on our side
    -100: ErrorCode.CONFIG,          # bad command format
    -110: ErrorCode.CONFIG,          # request from a non-registered IP
    -1: ErrorCode.CONFIG,            # reqn malformed
    -2: ErrorCode.AUTH,              # sign malformed
    -3: ErrorCode.CONFIG,            # tranid malformed
    -4: ErrorCode.CONFIG,            # pursesrc malformed (our purse)
    -5: ErrorCode.INVALID_ACCOUNT,   # pursedest malformed
    -6: ErrorCode.AMOUNT_TOO_SMALL,  # amount malformed [?: no better class; final]
    -7: ErrorCode.CONFIG,            # desc malformed
    -8: ErrorCode.CONFIG,            # pcode too long
    -9: ErrorCode.CONFIG,            # pcode vs period
    -10: ErrorCode.CONFIG,           # pcode vs period
    -11: ErrorCode.CONFIG,           # wminvid malformed
    -12: ErrorCode.AUTH,             # WMID not registered
    -14: ErrorCode.AUTH,             # signature check failed
    -15: ErrorCode.AUTH,             # wmid malformed
    # access
    110: ErrorCode.CONFIG,           # no access to the interface
    111: ErrorCode.CONFIG,           # purse not owned by the signer and no trust
    5: ErrorCode.AUTH,               # sender WMID not found
    11: ErrorCode.CONFIG,            # sender purse not found
    32: ErrorCode.CONFIG,            # payer must fill personal data (certification centre)
    34: ErrorCode.CONFIG,            # idem
    72: ErrorCode.CONFIG,            # payer's WME service suspended
    # the recipient
    6: ErrorCode.INVALID_ACCOUNT,    # correspondent not found
    7: ErrorCode.INVALID_ACCOUNT,    # recipient purse not found
    26: ErrorCode.INVALID_ACCOUNT,   # same purse on both sides
    29: ErrorCode.INVALID_ACCOUNT,   # purse types differ
    30: ErrorCode.INVALID_ACCOUNT,   # purse does not accept direct transfers (C/D)
    35: ErrorCode.REJECTED_BY_RECIPIENT,  # payer not authorized by the correspondent
    58: ErrorCode.RECIPIENT_LIMIT,   # recipient purse limit exceeded
    73: ErrorCode.IDENTIFICATION_REQUIRED,  # recipient's service suspended (identification)
    74: ErrorCode.IDENTIFICATION_REQUIRED,
    # the amount and our float
    13: ErrorCode.AMOUNT_TOO_SMALL,  # amount must be > 0
    17: ErrorCode.INSUFFICIENT_FUNDS,
    # protection codes and invoices: never used by payouts (period=0, wminvid=0)
    18: ErrorCode.CONFIG,            # wmtranid not found
    20: ErrorCode.CONFIG,            # wrong protection code
    21: ErrorCode.CONFIG,            # invoice errors
    22: ErrorCode.CONFIG,
    25: ErrorCode.CONFIG,
}
#: Internal errors creating the transaction: read X3 by tranid, then repeat the same tranid.
RETRY_SAME_TRANID = frozenset({4, 15, 19, 23})
RETVAL_OK, RETVAL_REQN, RETVAL_TRANID_USED = 0, 102, 103
#: Every documented X2 retval (for the sandbox's magic purses and the tests).
DOCUMENTED_RETVALS = frozenset(RETVALS) | RETRY_SAME_TRANID | {RETVAL_OK, RETVAL_REQN,
                                                               RETVAL_TRANID_USED}

#: X3 ``opertype`` -> status [doc]: 0 completed, 4 protected not completed, 12 protected
#: refunded (for a payout: the money came back [?]).
OPERTYPES: Mapping[int, PayoutStatus] = {0: PayoutStatus.SUCCEEDED, 4: PayoutStatus.PENDING,
                                         12: PayoutStatus.REVERSED}


# --------------------------------------------------------------------------- signers

@runtime_checkable
class Signer(Protocol):
    """How requests are authenticated. ``paths`` picks the interface URLs; ``sign`` returns the
    ``<sign>`` value (None: no element); ``cert`` is the TLS client certificate for requests."""

    mode: str
    paths: Mapping[str, str]

    def sign(self, text: str) -> str | None: ...

    @property
    def cert(self) -> str | tuple[str, str] | None: ...


class TestSigner:
    """Sandbox only: HMAC-SHA256 (hex) of the signing string in Windows-1251, with a shared
    secret standing in for the WMID's WMSigner key. WebMoney itself never accepts it."""

    __test__ = False  # not a pytest class
    mode = "test"
    paths = CLASSIC_PATHS

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("webmoney: the test signer needs a key")
        self._key = key.encode("utf-8")

    def sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(ENCODING, "replace"), hashlib.sha256).hexdigest()

    @property
    def cert(self) -> None:
        return None


class LightCertSigner:
    """WebMoney Keeper "Light": no ``<sign>``; the request goes over TLS with the WMID's X.509
    client certificate to the ``…Cert.asp`` interfaces [doc]. ``cert_file`` (PEM certificate,
    or certificate + key) and ``key_file`` (PEM key, optional) are paths; ``ca_bundle`` optional."""

    mode = "light"
    paths = LIGHT_PATHS

    def __init__(self, cert_file: str, key_file: str = "", ca_bundle: str = "") -> None:
        if not cert_file:
            raise ValueError("webmoney: the Light signer needs cert_file")
        self.cert_file, self.key_file, self.ca_bundle = cert_file, key_file, ca_bundle

    def sign(self, text: str) -> None:
        return None

    @property
    def cert(self) -> str | tuple[str, str]:
        return (self.cert_file, self.key_file) if self.key_file else self.cert_file


# --------------------------------------------------------------------------- wire format

def amount_text(amount: Decimal) -> str:
    """The ``amount`` element: two decimals, dot (``"100.00"``)."""
    return format(amount.quantize(Decimal("0.01")), "f")


def cp1251_text(text: str) -> str:
    """``text`` restricted to what Windows-1251 can carry (others become ``?``)."""
    return text.encode(ENCODING, "replace").decode(ENCODING)


def x2_signing_string(reqn: int | str, tranid: int | str, pursesrc: str, pursedest: str,
                      amount: str, period: str, pcode: str, desc: str, wminvid: str) -> str:
    """reqn + tranid + pursesrc + pursedest + amount + period + pcode + desc + wminvid [doc]."""
    return f"{reqn}{tranid}{pursesrc}{pursedest}{amount}{period}{pcode}{desc}{wminvid}"


def x3_signing_string(purse: str, reqn: int | str) -> str:
    """purse + reqn [doc]."""
    return f"{purse}{reqn}"


def _sub(parent: ET.Element, tag: str, text: object) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = str(text)
    return element


def _xml(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding=ENCODING, xml_declaration=True)


def build_x2(signer: Signer, *, reqn: int, wmid: str, tranid: int, pursesrc: str,
             pursedest: str, amount: Decimal, desc: str, onlyauth: bool = True) -> bytes:
    """``w3s.request{reqn, wmid, sign, trans{...}}`` with period=0, empty pcode, wminvid=0."""
    desc = cp1251_text(desc)
    fields = {"tranid": tranid, "pursesrc": pursesrc, "pursedest": pursedest,
              "amount": amount_text(amount), "period": "0", "pcode": "", "desc": desc,
              "wminvid": "0", "onlyauth": "1" if onlyauth else "0"}
    root = ET.Element("w3s.request")
    _sub(root, "reqn", reqn)
    _sub(root, "wmid", wmid)
    signature = signer.sign(x2_signing_string(
        reqn, tranid, pursesrc, pursedest, fields["amount"], "0", "", desc, "0"))
    if signature is not None:
        _sub(root, "sign", signature)
    trans = ET.SubElement(root, "trans")
    for tag, value in fields.items():
        _sub(trans, tag, value)
    return _xml(root)


def build_x3(signer: Signer, *, reqn: int, wmid: str, purse: str, tranid: int,
             datestart: datetime, datefinish: datetime) -> bytes:
    """``w3s.request{reqn, wmid, sign, getoperations{purse, wmtranid, tranid, wminvid, orderid,
    datestart, datefinish}}``."""
    root = ET.Element("w3s.request")
    _sub(root, "reqn", reqn)
    _sub(root, "wmid", wmid)
    signature = signer.sign(x3_signing_string(purse, reqn))
    if signature is not None:
        _sub(root, "sign", signature)
    query = ET.SubElement(root, "getoperations")
    for tag, value in (("purse", purse), ("wmtranid", ""), ("tranid", tranid),
                       ("wminvid", ""), ("orderid", ""),
                       ("datestart", datestart.strftime(DATE_FORMAT)),
                       ("datefinish", datefinish.strftime(DATE_FORMAT))):
        _sub(query, tag, value)
    return _xml(root)


@dataclass(frozen=True)
class Operation:
    """One ``operation`` element of an X2 or X3 answer."""

    wmtranid: str
    tranid: str
    pursesrc: str
    pursedest: str
    amount: Decimal
    comiss: Decimal
    opertype: int
    desc: str


@dataclass(frozen=True)
class X2Answer:
    """A parsed ``w3s.response``: retval, retdesc and the operations it carries."""

    reqn: str
    retval: int
    retdesc: str
    operations: tuple[Operation, ...]


def _money(text: str | None) -> Decimal:
    value = Decimal((text or "").strip())
    if not value.is_finite():
        raise ValueError(f"bad amount {text!r}")
    return value


def _operation(element: ET.Element) -> Operation:
    def text(tag: str) -> str:
        return (element.findtext(tag) or "").strip()

    return Operation(wmtranid=str(element.get("id") or ""), tranid=text("tranid"),
                     pursesrc=text("pursesrc"), pursedest=text("pursedest"),
                     amount=_money(text("amount")), comiss=_money(text("comiss") or "0"),
                     opertype=int(text("opertype") or "0"), desc=text("desc"))


def parse_response(body: bytes) -> X2Answer:
    """Parse a ``w3s.response``. :raises ValueError: not one (garbled)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from exc
    if root.tag != "w3s.response":
        raise ValueError(f"unexpected root {root.tag!r}")
    retval_text = (root.findtext("retval") or "").strip()
    if not re.fullmatch(r"-?[0-9]+", retval_text):
        raise ValueError(f"bad retval {retval_text!r}")
    try:
        operations = tuple(_operation(e) for e in root.iter("operation"))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"bad operation: {exc}") from exc
    return X2Answer(reqn=(root.findtext("reqn") or "").strip(), retval=int(retval_text),
                    retdesc=(root.findtext("retdesc") or "").strip(), operations=operations)


# --------------------------------------------------------------------------- transport







def operation_result(operation: Operation, raw: str) -> Result:
    """The :class:`Result` of an operation found for our tranid."""
    status = OPERTYPES.get(operation.opertype)
    if status is None:
        return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE,
                              f"unknown opertype {operation.opertype}: {raw}")
    return Result(status, None, operation.wmtranid or None, operation.amount, operation.comiss,
                  raw_message=raw)


def retval_result(retval: int, retdesc: str) -> Result:
    """The :class:`Result` of an X2 refusal (anything but 0, 102 and 103)."""
    raw = f"retval {retval}: {retdesc}"
    code = RETVALS.get(retval)
    if code is None:  # 4/15/19/23 and undocumented: we cannot tell
        return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, raw)
    return Result.failed(code, raw)


class WebMoneyClient:
    """One signing WMID with one source purse. Thread-safe (one session per thread).

    :param next_reqn: returns the next ``reqn`` (strictly increasing across every worker).
    """

    def __init__(self, base_url: str, *, wmid: str, purse: str, signer: Signer,
                 next_reqn: Callable[[], int], connect_timeout: float, read_timeout: float,
                 reqn_attempts: int = 3, onlyauth: bool = True, lookback_days: int = 90) -> None:
        self.base_url = base_url.rstrip("/")
        self.wmid, self.purse, self.signer = wmid, purse, signer
        self._next_reqn = next_reqn
        self._timeout = (connect_timeout, read_timeout)
        self.reqn_attempts, self.onlyauth, self.lookback_days = (reqn_attempts, onlyauth,
                                                                 lookback_days)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(max_retries=0)  # never resend on our own
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.cert = self.signer.cert
            ca_bundle = getattr(self.signer, "ca_bundle", "")
            if ca_bundle:
                session.verify = ca_bundle
            self._local.session = session
        return session

    def _post(self, interface: str, body: bytes) -> requests.Response:
        return self._session().post(
            f"{self.base_url}{self.signer.paths[interface]}", data=body, timeout=self._timeout,
            headers={"Content-Type": f"text/xml; charset={ENCODING}"})

    def _answer(self, response: requests.Response, *, submitting: bool
                ) -> X2Answer | Result:
        raw = f"HTTP {response.status_code}: {response.text[:300]}"
        if response.status_code == 200:
            try:
                return parse_response(response.content)
            except ValueError as exc:
                return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, f"garbled answer ({exc})")
        if response.status_code >= 500:
            return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, raw)
        code = ErrorCode.RATE_LIMITED if response.status_code == 429 else ErrorCode.CONFIG
        if submitting:
            return Result.failed(code, raw, retry_after=_retry_after(response))
        return Result.unknown(code, raw, retry_after=_retry_after(response))

    # -- X2 --
    def transfer(self, *, tranid: int, pursedest: str, amount: Decimal, desc: str) -> Result:
        """X2 under ``tranid``; 102 -> new reqn, same tranid; 103 -> X3 by tranid."""
        answer: X2Answer | Result | None = None
        for _ in range(max(1, self.reqn_attempts)):
            body = build_x2(self.signer, reqn=self._next_reqn(), wmid=self.wmid,
                            tranid=tranid, pursesrc=self.purse, pursedest=pursedest,
                            amount=amount, desc=desc, onlyauth=self.onlyauth)
            try:
                response = self._post("x2", body)
            except requests.RequestException as exc:
                return transport_failure(exc, submitting=True)
            answer = self._answer(response, submitting=True)
            if isinstance(answer, Result):
                return answer
            if answer.retval != RETVAL_REQN:
                break
        assert answer is not None
        if isinstance(answer, Result):
            return answer
        raw = f"retval {answer.retval}: {answer.retdesc}"
        if answer.retval == RETVAL_REQN:  # our counter is behind WebMoney's: a human must look
            return Result.failed(ErrorCode.CONFIG, f"{raw} (after {self.reqn_attempts} reqns)")
        if answer.retval == RETVAL_OK:
            mine = [op for op in answer.operations if op.tranid == str(tranid)] \
                or list(answer.operations)
            if not mine:
                return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, f"no operation: {raw}")
            return operation_result(mine[0], raw)
        if answer.retval == RETVAL_TRANID_USED:
            found = self.find(tranid)
            if isinstance(found, Operation):
                if (found.pursedest, found.amount) != (pursedest, amount):
                    return Result.failed(
                        ErrorCode.DUPLICATE_CONFLICT,
                        f"{raw}; tranid {tranid} holds {found.amount} to {found.pursedest}",
                        provider_reference=found.wmtranid or None)
                return operation_result(found, f"{raw}; found by X3")
            return found if found.error is not ErrorCode.NOT_FOUND else Result.unknown(
                ErrorCode.PROVIDER_UNAVAILABLE, f"{raw} but X3 does not show tranid {tranid}")
        return retval_result(answer.retval, answer.retdesc)

    # -- X3 --
    def find(self, tranid: int, now: datetime | None = None) -> Operation | Result:
        """The operation of our ``tranid`` (X3), or an ``unknown`` result (``not_found`` when
        WebMoney has none)."""
        now = now or datetime.now(timezone.utc).replace(tzinfo=None)
        for _ in range(max(1, self.reqn_attempts)):
            body = build_x3(self.signer, reqn=self._next_reqn(), wmid=self.wmid,
                            purse=self.purse, tranid=tranid,
                            datestart=now - timedelta(days=self.lookback_days),
                            datefinish=now + timedelta(days=1))
            try:
                response = self._post("x3", body)
            except requests.RequestException as exc:
                return transport_failure(exc, submitting=False)
            answer = self._answer(response, submitting=False)
            if isinstance(answer, Result):
                return answer
            if answer.retval != RETVAL_REQN:
                break
        raw = f"X3 retval {answer.retval}: {answer.retdesc}"
        if answer.retval != RETVAL_OK:
            code = RETVALS.get(answer.retval, ErrorCode.PROVIDER_UNAVAILABLE)
            return Result.unknown(code, raw)
        for operation in answer.operations:
            if operation.tranid == str(tranid) and operation.pursesrc == self.purse:
                return operation
        return Result.unknown(ErrorCode.NOT_FOUND, f"{raw}; no operation with tranid {tranid}")

    def status(self, tranid: int) -> Result:
        found = self.find(tranid)
        if isinstance(found, Operation):
            return operation_result(found, f"X3: operation {found.wmtranid}")
        return found


def settings_signer(mode: str, credentials: Mapping[str, Any]) -> Signer:
    """The signer named by the ``signer`` setting, built from ``credentials``."""
    if mode == "test":
        return TestSigner(str(credentials.get("test_key") or ""))
    if mode == "light":
        return LightCertSigner(str(credentials.get("cert_file") or ""),
                               str(credentials.get("key_file") or ""),
                               str(credentials.get("ca_bundle") or ""))
    raise ValueError(f"webmoney: unknown signer {mode!r} (use 'light'; 'test' for sandboxes)")
