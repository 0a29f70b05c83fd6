"""The shared phone client: YooKassa's mass-payout protocol (``makeDeposition``), its pluggable
signed-XML wrapper and its error mapping. Used by the ``mts``, ``megafon`` and ``beeline``
providers (see the package docstring).

Every call has explicit ``(connect, read)`` timeouts and no automatic retries: a resend after the
request left would be a second payout attempt, and that decision belongs to the engine.
"""
from __future__ import annotations

import abc
import base64
import hashlib
import hmac
import json
import re
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from plugins import ErrorCode, PayoutProviderError, PayoutStatus, Result
from plugins.wire import retry_after as _retry_after, transport_failure

__all__ = [
    "CONTENT_TYPE",
    "ERROR_CODES",
    "REVERSAL_CODES",
    "PhoneClient",
    "ProtocolError",
    "SignatureError",
    "Signer",
    "TestSigner",
    "client_order_id_for",
    "map_answer",
]

CONTENT_TYPE = "application/pkcs7-mime"
DEPOSITION_PATH = "/webservice/deposition/api/makeDeposition"
BALANCE_PATH = "/webservice/deposition/api/balance"

#: ``status`` attribute values of a ``makeDepositionResponse``.
STATUS_SUCCESS, STATUS_IN_PROGRESS, STATUS_REJECTED = "0", "1", "3"

#: Documented ``error`` codes -> (our error code, the payout status they give).
#: 10-19 are request bugs: final per the reference's §5, and ``config`` so the provider pauses.
ERROR_CODES: Mapping[int, tuple[ErrorCode, PayoutStatus]] = {
    10: (ErrorCode.CONFIG, PayoutStatus.FAILED_FINAL),          # XML syntax
    11: (ErrorCode.CONFIG, PayoutStatus.FAILED_RETRYABLE),      # agentId
    12: (ErrorCode.CONFIG, PayoutStatus.FAILED_RETRYABLE),      # subagentId
    14: (ErrorCode.CONFIG, PayoutStatus.FAILED_FINAL),          # currency
    15: (ErrorCode.CONFIG, PayoutStatus.FAILED_FINAL),          # requestDT
    16: (ErrorCode.INVALID_ACCOUNT, PayoutStatus.FAILED_FINAL),  # dstAccount
    17: (ErrorCode.CONFIG, PayoutStatus.FAILED_FINAL),          # amount format
    18: (ErrorCode.CONFIG, PayoutStatus.FAILED_FINAL),          # clientOrderId
    19: (ErrorCode.CONFIG, PayoutStatus.FAILED_FINAL),          # contract
    21: (ErrorCode.CONFIG, PayoutStatus.FAILED_RETRYABLE),      # operation not allowed
    26: (ErrorCode.DUPLICATE_CONFLICT, PayoutStatus.FAILED_FINAL),
    30: (ErrorCode.PROVIDER_UNAVAILABLE, PayoutStatus.FAILED_RETRYABLE),
    31: (ErrorCode.REJECTED_BY_RECIPIENT, PayoutStatus.FAILED_FINAL),
    40: (ErrorCode.INVALID_ACCOUNT, PayoutStatus.FAILED_FINAL),   # account closed
    41: (ErrorCode.ACCOUNT_BLOCKED, PayoutStatus.FAILED_FINAL),
    42: (ErrorCode.INVALID_ACCOUNT, PayoutStatus.FAILED_FINAL),   # no such account
    43: (ErrorCode.RECIPIENT_LIMIT, PayoutStatus.FAILED_FINAL),   # one-off limit
    44: (ErrorCode.SENDER_LIMIT, PayoutStatus.FAILED_RETRYABLE),  # period limit: later
    45: (ErrorCode.INSUFFICIENT_FUNDS, PayoutStatus.FAILED_RETRYABLE),
    46: (ErrorCode.AMOUNT_TOO_SMALL, PayoutStatus.FAILED_FINAL),
    47: (ErrorCode.DECLINED, PayoutStatus.FAILED_FINAL),         # [?] listed, meaning not found
    48: (ErrorCode.REJECTED_BY_RECIPIENT, PayoutStatus.FAILED_FINAL),
    50: (ErrorCode.AUTH, PayoutStatus.FAILED_RETRYABLE),        # broken PKCS#7
    51: (ErrorCode.AUTH, PayoutStatus.FAILED_RETRYABLE),        # signature mismatch
    53: (ErrorCode.AUTH, PayoutStatus.FAILED_RETRYABLE),        # unknown certificate
    55: (ErrorCode.AUTH, PayoutStatus.FAILED_RETRYABLE),        # certificate expired
    105: (ErrorCode.DECLINED, PayoutStatus.FAILED_FINAL),       # payment-code time expired
    110: (ErrorCode.REJECTED_BY_RECIPIENT, PayoutStatus.REVERSED),  # operator returned it
    201: (ErrorCode.RECIPIENT_LIMIT, PayoutStatus.FAILED_FINAL),
}
#: Codes of an ``errorDepositionNotification`` that turn a success into ``reversed``.
REVERSAL_CODES = frozenset({31, 105, 110})
_UNLISTED = (ErrorCode.DECLINED, PayoutStatus.FAILED_FINAL)
#: Errors for a request the service could not read: the answer may lack our clientOrderId.
_UNREADABLE = frozenset({"10", "50", "51", "53", "55"})




class ProtocolError(ValueError):
    """An answer that cannot be read (garbled, wrong document, about another order)."""


class SignatureError(ProtocolError):
    """The signed wrapper is broken (50), its signature does not match (51), its certificate is
    unknown (53) or expired (55)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- signed wrapper

class Signer(abc.ABC):
    """The signed-XML wrapper: production wraps in PKCS#7 (a CMS ``SignedData`` with the client
    certificate) and verifies YooKassa's ``deposit.cer`` signature on answers. Plug one in with
    the ``signer`` setting (``"module:factory"``, called with the provider settings)."""

    content_type: str = CONTENT_TYPE

    @abc.abstractmethod
    def wrap(self, xml_bytes: bytes) -> bytes:
        """Sign an outgoing XML document."""

    @abc.abstractmethod
    def unwrap(self, body: bytes) -> bytes:
        """Verify an incoming signed body and return its XML. :raises SignatureError:"""


def _envelope(certificate: str, document: bytes, secret: str) -> bytes:
    signature = hmac.new(secret.encode(), certificate.encode() + b"\n" + document,
                         hashlib.sha256).hexdigest()
    return json.dumps({"certificate": certificate,
                       "document": base64.b64encode(document).decode("ascii"),
                       "signature": signature}, sort_keys=True, separators=(",", ":")).encode()


def read_envelope(body: bytes) -> tuple[str, bytes, str]:
    """``(certificate, document, signature)`` of a test envelope; the body must be exactly the
    canonical form (as DER is). :raises SignatureError: 50."""
    try:
        data = json.loads(body.decode("utf-8"))
        certificate, document, signature = data["certificate"], data["document"], data["signature"]
        if not all(isinstance(v, str) for v in (certificate, document, signature)):
            raise TypeError("fields must be strings")
        raw = base64.b64decode(document.encode("ascii"), validate=True)
        canonical = json.dumps({"certificate": certificate, "document": document,
                                "signature": signature}, sort_keys=True,
                               separators=(",", ":")).encode()
    except (ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise SignatureError(50, f"broken signed envelope: {exc}") from exc
    if canonical != body:
        raise SignatureError(50, "broken signed envelope: not canonical")
    return certificate, raw, signature


def verify_envelope(body: bytes, certificates: Mapping[str, str],
                    expired: frozenset[str] | set[str] = frozenset()) -> tuple[str, bytes]:
    """Check a test envelope against ``certificates`` (name -> secret).

    :returns: ``(certificate, document)``. :raises SignatureError: 50, 51, 53 or 55.
    """
    certificate, document, signature = read_envelope(body)
    secret = certificates.get(certificate)
    if secret is None:
        raise SignatureError(53, f"unknown certificate {certificate!r}")
    if certificate in expired:
        raise SignatureError(55, f"certificate {certificate!r} expired")
    expected = json.loads(_envelope(certificate, document, secret))["signature"]
    if not hmac.compare_digest(expected, signature):
        raise SignatureError(51, "signature does not match")
    return certificate, document


class TestSigner(Signer):
    """SANDBOX ONLY: an HMAC-SHA256-signed JSON envelope standing in for PKCS#7.

    ``{"certificate": <name>, "document": <base64 XML>, "signature": <hex>}``, canonical JSON.
    Outgoing documents are signed as ``certificate_name`` with ``secret``; answers must be signed
    as ``peer_certificate`` with ``peer_secret`` (the sandbox's stand-in for ``deposit.cer``).
    """

    __test__ = False

    def __init__(self, certificate_name: str, secret: str, *, peer_certificate: str = "deposit",
                 peer_secret: str = "sandbox-deposit-secret") -> None:
        self.certificate_name, self._secret = certificate_name, secret
        self._peers = {peer_certificate: peer_secret}

    def wrap(self, xml_bytes: bytes) -> bytes:
        return _envelope(self.certificate_name, xml_bytes, self._secret)

    def unwrap(self, body: bytes) -> bytes:
        return verify_envelope(body, self._peers)[1]


# --------------------------------------------------------------------------- XML

def parse_xml(document: bytes, root: str) -> ET.Element:
    """Parse a small protocol document; refuse DTDs (no entity expansion). :raises ProtocolError:"""
    if b"<!DOCTYPE" in document.upper() or b"<!ENTITY" in document.upper():
        raise ProtocolError("DTDs are not allowed")
    try:
        element = ET.fromstring(document)
    except ET.ParseError as exc:
        raise ProtocolError(f"not XML: {exc}") from exc
    if element.tag != root:
        raise ProtocolError(f"expected <{root}>, got <{element.tag}>")
    return element


def request_dt(now: datetime | None = None) -> str:
    """``requestDT``: ISO 8601 with milliseconds and offset."""
    return (now or datetime.now(timezone.utc)).isoformat(timespec="milliseconds")


def deposition_xml(*, agent_id: str, client_order_id: str, dst_account: str, amount: Decimal,
                   currency: str, contract: str, requested_at: str | None = None) -> bytes:
    """A ``makeDepositionRequest`` document for a mobile top-up."""
    if not isinstance(amount, Decimal):
        raise TypeError("amount must be a Decimal")
    element = ET.Element("makeDepositionRequest", {
        "agentId": agent_id, "clientOrderId": client_order_id,
        "requestDT": requested_at or request_dt(), "dstAccount": dst_account,
        "amount": format(amount.quantize(Decimal("0.01")), "f"), "currency": currency,
        "contract": contract})
    params = ET.SubElement(element, "paymentParams")
    ET.SubElement(params, "pof_offerAccepted").text = "1"
    return ET.tostring(element, encoding="UTF-8", xml_declaration=True)


def client_order_id_for(key: str, mode: str = "key") -> str:
    """Our idempotency key -> ``clientOrderId``.

    ``key``: the key itself (the SDK's string ids). ``digest``: a positive integer (what the doc
    recommends) derived from SHA-256 of the key, 18 digits at most; stable, so status checks
    repeat it. :raises ValueError: unknown mode.
    """
    if mode == "key":
        return key
    if mode == "digest":
        value = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 10 ** 18
        return str(value or 1)
    raise ValueError(f"unknown client_order_id mode {mode!r} (key, digest)")


def map_answer(status: str, error: int | None, raw: str, reference: str | None = None,
               amount: Decimal | None = None) -> Result:
    """A ``makeDepositionResponse`` (``status``, ``error``) -> our :class:`Result`."""
    if status == STATUS_SUCCESS:
        return Result(PayoutStatus.SUCCEEDED, None, reference, amount, raw_message=raw)
    if status == STATUS_IN_PROGRESS:
        return Result(PayoutStatus.PENDING, None, reference, amount, raw_message=raw)
    if status == STATUS_REJECTED:
        code, result_status = ERROR_CODES.get(error, _UNLISTED) if error is not None else _UNLISTED
        return Result(result_status, code, reference, amount, raw_message=raw)
    raise ProtocolError(f"unknown status {status!r}")


# --------------------------------------------------------------------------- the client

class PhoneClient:
    """One YooKassa mass-payout gateway (``agentId``). Thread-safe."""

    def __init__(self, base_url: str, *, agent_id: str, signer: Signer, currency_code: str,
                 contract: str, client_order_ids: str, connect_timeout: float,
                 read_timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.agent_id, self.signer = agent_id, signer
        self.currency_code, self.contract = currency_code, contract
        self.client_order_ids = client_order_ids
        client_order_id_for("probe", client_order_ids)  # fail fast on a bad mode
        self._timeout = (connect_timeout, read_timeout)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    def order_id(self, key: str) -> str:
        return client_order_id_for(key, self.client_order_ids)

    def _post(self, path: str, document: bytes) -> requests.Response:
        return self._session().post(f"{self.base_url}{path}", data=self.signer.wrap(document),
                                    headers={"Content-Type": self.signer.content_type},
                                    timeout=self._timeout)

    def deposit(self, key: str, *, dst_account: str, amount: Decimal, submitting: bool) -> Result:
        """Send ``makeDepositionRequest`` (a first submit, or its identical repeat = status)."""
        order_id = self.order_id(key)
        document = deposition_xml(agent_id=self.agent_id, client_order_id=order_id,
                                  dst_account=dst_account, amount=amount,
                                  currency=self.currency_code, contract=self.contract)
        try:
            response = self._post(DEPOSITION_PATH, document)
        except requests.RequestException as exc:
            return transport_failure(exc, submitting=submitting)
        raw = f"HTTP {response.status_code}"
        if response.status_code == 429:
            wait = _retry_after(response)
            if submitting:
                return Result.failed(ErrorCode.RATE_LIMITED, raw, retry_after=wait)
            return Result.unknown(ErrorCode.RATE_LIMITED, raw, retry_after=wait)
        if response.status_code != 200:
            return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, f"{raw}: {response.text[:300]}")
        try:
            answer = parse_xml(self.signer.unwrap(response.content), "makeDepositionResponse")
            answered_id = answer.get("clientOrderId") or ""
            # a request the service could not read (crypto, XML) is refused without our id
            if answered_id != order_id and not (answered_id == "" and answer.get("status") == "3"
                                            and answer.get("error") in _UNREADABLE):
                raise ProtocolError(f"answer about clientOrderId {answer.get('clientOrderId')!r}")
            error_text = answer.get("error")
            error = int(error_text) if error_text not in (None, "", "0") else None
            raw = (f"status={answer.get('status')} error={error_text} "
                   f"processedDT={answer.get('processedDT')} "
                   f"techMessage={answer.get('techMessage')}")
            result = map_answer(answer.get("status", ""), error, raw, reference=order_id)
        except (ProtocolError, ValueError) as exc:
            return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, f"garbled answer ({exc}): {raw}")
        if not submitting and result.status is PayoutStatus.FAILED_RETRYABLE \
                and result.error is not None and result.error.pauses_provider:
            return Result.unknown(result.error, result.raw_message)  # says nothing about the payout
        return result

    def balance(self) -> Decimal:
        """``balanceRequest``. :raises PayoutProviderError:"""
        element = ET.Element("balanceRequest", {"agentId": self.agent_id,
                                                "clientOrderId": uuid.uuid4().hex,
                                                "requestDT": request_dt()})
        try:
            response = self._post(BALANCE_PATH, ET.tostring(element, encoding="UTF-8",
                                                            xml_declaration=True))
        except requests.RequestException as exc:
            result = transport_failure(exc, submitting=False)
            raise PayoutProviderError(result.error or ErrorCode.PROVIDER_UNAVAILABLE,
                                      result.raw_message) from exc
        if response.status_code != 200:
            raise PayoutProviderError(ErrorCode.PROVIDER_UNAVAILABLE,
                                      f"HTTP {response.status_code}")
        try:
            answer = parse_xml(self.signer.unwrap(response.content), "balanceResponse")
        except ProtocolError as exc:
            raise PayoutProviderError(ErrorCode.PROVIDER_UNAVAILABLE, f"garbled: {exc}") from exc
        if answer.get("status") != STATUS_SUCCESS:
            code, _status = ERROR_CODES.get(int(answer.get("error") or 0), _UNLISTED)
            raise PayoutProviderError(code, f"balance error {answer.get('error')}")
        try:
            return Decimal(answer.get("balance", ""))
        except ArithmeticError as exc:
            raise PayoutProviderError(ErrorCode.PROVIDER_UNAVAILABLE, "garbled balance") from exc


#: The local sandbox's public secrets (``sandbox.py``): never accepted in production.
SANDBOX_SECRETS = frozenset({"sandbox-signing-secret", "sandbox-deposit-secret"})


def settings_signer(settings: Mapping[str, Any]) -> Signer:
    """The :class:`Signer` named by the ``signer`` setting: ``"test"`` or ``"module:factory"``."""
    spec = settings.get("signer", "test")
    credentials = settings["credentials"]
    if spec == "test":
        return TestSigner(credentials["certificate_name"], credentials["signing_secret"],
                          peer_certificate=credentials.get("server_certificate", "deposit"),
                          peer_secret=credentials.get("server_secret", "sandbox-deposit-secret"))
    if not isinstance(spec, str) or not re.fullmatch(r"[\w.]+:\w+", spec):
        raise ValueError(f"signer setting {spec!r}: 'test' or 'module:factory'")
    import importlib
    module, _, attr = spec.partition(":")
    signer = getattr(importlib.import_module(module), attr)(settings)
    if not isinstance(signer, Signer):
        raise ValueError(f"signer factory {spec!r} did not return a Signer")
    return signer
