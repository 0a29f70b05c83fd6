"""HMAC-SHA256 signing of network postbacks.

A postback is a POST whose body is raw JSON bytes, sent with three headers::

    X-Cashback-Network:   <network code>         selects the shared secret
    X-Cashback-Timestamp: <unix seconds>
    X-Cashback-Signature: sha256=<hex>           HMAC-SHA256(secret, b"<timestamp>." + body)

The signature covers the timestamp, so an old request cannot be replayed with a fresh timestamp,
and :func:`verify` refuses timestamps further than ``window`` seconds from the receiver's clock.
The body is signed byte for byte: verify the bytes exactly as received, before any JSON parsing.

Order of checks in :func:`verify`: both headers present and well-formed, then the signature, then
the clock window. A ``stale_timestamp`` answer is therefore only ever given to a correctly signed
request (a genuine sender with a skewed clock, or a replay), which makes it safe to show.

Replaying a postback by hand (the README's "documented signing command")::

    CASHBACK_POSTBACK_SECRET=... python -m portal.services.postback_signing \\
        http://127.0.0.1:5000/api/v1/network/postback epn body.json

prints a ready-to-paste ``curl`` command (see :func:`signed_curl`).
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import re
import shlex
import sys
import time
from typing import Literal, Mapping, Sequence, Union

from flask_babel import LazyString
from werkzeug.datastructures import EnvironHeaders

from portal.i18n import _l

__all__ = [
    "NETWORK_HEADER", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "SIGNATURE_PREFIX", "DEFAULT_WINDOW",
    "SignatureError", "ErrorCode", "sign", "verify", "signature_for", "network_code", "signed_curl",
    "main",
]

Message = Union[str, LazyString]

NETWORK_HEADER = "X-Cashback-Network"
TIMESTAMP_HEADER = "X-Cashback-Timestamp"
SIGNATURE_HEADER = "X-Cashback-Signature"
SIGNATURE_PREFIX = "sha256="
#: Accepted clock difference, in seconds, either way.
DEFAULT_WINDOW = 300
#: Environment variable read by the command-line helper (never pass a secret in argv).
SECRET_ENV = "CASHBACK_POSTBACK_SECRET"

ErrorCode = Literal[
    "missing_signature", "bad_signature_format", "bad_signature",
    "missing_timestamp", "bad_timestamp", "stale_timestamp",
]

_HEX_DIGEST_RE = re.compile(r"[0-9a-fA-F]{64}")
# Unix seconds: plain ASCII digits, no sign, at most 12 digits (year ~33658), no leading garbage.
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")


class SignatureError(Exception):
    """A postback failed verification. ``code`` is stable (for logs, metrics and the JSON answer);
    ``message`` is a translatable explanation."""

    def __init__(self, code: ErrorCode, message: Message) -> None:
        super().__init__(code, message)
        self.code: ErrorCode = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def signature_for(secret: bytes, body: bytes, timestamp: int) -> str:
    """The lowercase hex HMAC-SHA256 of ``b"<timestamp>." + body`` under ``secret``."""
    _check_secret(secret)
    _check_body(body)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative int (unix seconds)")
    return _mac(secret, str(timestamp), body)


def _mac(secret: bytes, timestamp_text: str, body: bytes) -> str:
    """HMAC-SHA256 over the timestamp text as sent, a dot, and the body bytes."""
    message = timestamp_text.encode("ascii") + b"." + bytes(body)
    return hmac.new(bytes(secret), message, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """The timestamp and signature headers for ``body`` sent at ``timestamp`` (unix seconds).

    The caller adds ``X-Cashback-Network`` itself (or uses :func:`signed_curl`).
    """
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: SIGNATURE_PREFIX + signature_for(secret, body, timestamp),
    }


def verify(secret: bytes, body: bytes, headers: Mapping[str, str], *,
           now: int, window: int = DEFAULT_WINDOW) -> None:
    """Return if ``headers`` carry a valid, fresh signature of ``body``; else raise
    :class:`SignatureError`.

    Header names are matched case-insensitively. A timestamp exactly ``window`` seconds away from
    ``now`` (in either direction) is accepted; one second more is ``stale_timestamp``.
    """
    _check_secret(secret)
    if window < 0:
        raise ValueError("window must not be negative")
    _check_body(body)
    given = _parse_signature(headers)
    timestamp_text = _parse_timestamp(headers)
    timestamp = int(timestamp_text)
    expected = _mac(secret, timestamp_text, body)
    if not hmac.compare_digest(expected.encode("ascii"), given.encode("ascii")):
        raise SignatureError("bad_signature", _l("The signature does not match the request body."))
    if abs(now - timestamp) > window:
        raise SignatureError("stale_timestamp", _l(
            "The timestamp is %(skew)s seconds away from the server clock; at most %(window)s are allowed.",
            skew=abs(now - timestamp), window=window))


def network_code(headers: Mapping[str, str]) -> str | None:
    """The ``X-Cashback-Network`` value (stripped), or None when absent/empty or given twice.

    The endpoint looks the secret up with it before calling :func:`verify`.
    """
    try:
        value = _header(headers, NETWORK_HEADER)
    except _Ambiguous:
        return None
    return value.strip() if value and value.strip() else None


def signed_curl(url: str, secret: bytes, body: bytes, network: str,
                timestamp: int | None = None) -> str:
    """A ready-to-paste POSIX-shell ``curl`` command sending ``body`` as a signed postback.

    ``timestamp`` defaults to now; the command must be run within the verification window.
    Every argument is shell-quoted, so a body containing quotes or newlines survives intact.
    The secret itself does not appear in the command, only the signature.
    """
    if timestamp is None:
        timestamp = int(time.time())
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("the postback body must be UTF-8 (JSON) to be pasted in a shell") from exc
    if "\x00" in text:
        raise ValueError("the postback body must not contain NUL bytes")
    headers = {"Content-Type": "application/json", NETWORK_HEADER: network}
    headers.update(sign(secret, body, timestamp))
    parts = ["curl", "-sS", "-X", "POST", shlex.quote(url)]
    for name, value in headers.items():
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    parts += ["--data-raw", shlex.quote(text)]  # --data-raw: a leading "@" is not a file name
    return " ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: print a signed ``curl`` replay of a postback body file.

    The secret is read from the ``CASHBACK_POSTBACK_SECRET`` environment variable.
    """
    parser = argparse.ArgumentParser(
        prog="python -m portal.services.postback_signing",
        description="Print a curl command that replays a signed network postback. "
                    f"The shared secret is read from ${SECRET_ENV}.")
    parser.add_argument("url", help="postback endpoint URL")
    parser.add_argument("network", help="network code sent in X-Cashback-Network")
    parser.add_argument("body", help="file with the exact JSON body ('-' for stdin)")
    parser.add_argument("--timestamp", type=int, default=None, help="unix seconds (default: now)")
    args = parser.parse_args(argv)
    secret = os.environ.get(SECRET_ENV, "")
    if not secret:
        parser.error(f"set ${SECRET_ENV} to the network's shared secret")
    body = sys.stdin.buffer.read() if args.body == "-" else _read_file(args.body)
    print(signed_curl(args.url, secret.encode("utf-8"), body, args.network, args.timestamp))
    return 0


# --- helpers -------------------------------------------------------------------------------------

class _Ambiguous(Exception):
    """A header was sent more than once (with different-case names or as repeated items)."""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup; raises :class:`_Ambiguous` if the header occurs more than once."""
    if isinstance(headers, EnvironHeaders):  # WSGI: one environ key per header (the server joined repeats)
        value = headers.get(name)
        values = [] if value is None else [value]
    else:
        wanted = name.lower()
        values = [value for key, value in headers.items() if key.lower() == wanted]
    if len(values) > 1:
        raise _Ambiguous(name)
    return values[0] if values else None


def _parse_signature(headers: Mapping[str, str]) -> str:
    """The lowercase hex digest from ``sha256=<64 hex>``; the prefix is case-insensitive."""
    try:
        raw = _header(headers, SIGNATURE_HEADER)
    except _Ambiguous:
        raise SignatureError("bad_signature_format", _l(
            "The X-Cashback-Signature header was sent more than once.")) from None
    if raw is None or not raw.strip():
        raise SignatureError("missing_signature", _l("The X-Cashback-Signature header is missing."))
    value = raw.strip()
    prefix, digest = value[:len(SIGNATURE_PREFIX)], value[len(SIGNATURE_PREFIX):]
    if prefix.lower() != SIGNATURE_PREFIX or not _HEX_DIGEST_RE.fullmatch(digest):
        raise SignatureError("bad_signature_format", _l(
            "The X-Cashback-Signature header must be sha256= followed by 64 hexadecimal digits."))
    return digest.lower()


def _parse_timestamp(headers: Mapping[str, str]) -> str:
    """Unix seconds as plain decimal digits, returned as sent (stripped): that text is signed."""
    try:
        raw = _header(headers, TIMESTAMP_HEADER)
    except _Ambiguous:
        raise SignatureError("bad_timestamp", _l(
            "The X-Cashback-Timestamp header was sent more than once.")) from None
    if raw is None or not raw.strip():
        raise SignatureError("missing_timestamp", _l("The X-Cashback-Timestamp header is missing."))
    if not _TIMESTAMP_RE.fullmatch(raw.strip()):
        raise SignatureError("bad_timestamp", _l(
            "The X-Cashback-Timestamp header must be a Unix time in whole seconds."))
    return raw.strip()


def _check_secret(secret: bytes) -> None:
    """An empty or non-bytes secret is a configuration error, not a bad request."""
    if not isinstance(secret, (bytes, bytearray)):
        raise TypeError("secret must be bytes")
    if not secret:
        raise ValueError("secret must not be empty")


def _check_body(body: bytes) -> None:
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError("body must be bytes (the raw request body)")


def _read_file(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
