"""Wire helpers for provider protocols (shared by every provider client).

``transport_failure`` maps a request that got no usable HTTP answer to a :class:`Result`;
``retry_after`` reads a ``Retry-After`` header; ``json_decimal`` parses a JSON answer with
numbers as ``Decimal``.

``dumps_exact`` writes JSON whose ``Decimal`` values are JSON *numbers* with exactly their
decimal digits (``Decimal("100.10")`` -> ``100.10``) — for protocols such as QIWI's that want
numbers, without ever passing money through ``float``.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3

from plugins.provider import ErrorCode, Result


def _nothing_sent(exc: requests.RequestException) -> bool:
    """True when the connection was never established, so the request cannot have arrived."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason: object = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)  # incl. NewConnectionError


def transport_failure(exc: requests.RequestException, *, submitting: bool) -> Result:
    """The result of a request that got no usable HTTP answer.

    Only a submit that provably never left gives ``failed_retryable``; everything else is
    ``unknown``: a read timeout or a dropped connection may come after the provider committed.
    """
    if _nothing_sent(exc):
        text = f"connection failed before sending: {exc}"
        if submitting:
            return Result.failed(ErrorCode.PROVIDER_UNAVAILABLE, text)
        return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, text)
    if isinstance(exc, (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError)):
        return Result.unknown(ErrorCode.TIMEOUT, f"no answer: {exc}")
    return Result.unknown(ErrorCode.PROVIDER_UNAVAILABLE, f"request failed: {exc!r}")


def retry_after(response: requests.Response) -> timedelta | None:
    """``Retry-After`` in seconds or as an HTTP date; None when absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when - datetime.now(timezone.utc), timedelta(0))


def json_decimal(response: requests.Response) -> Any:
    """The answer's JSON with every number as ``Decimal`` (UnicodeDecodeError/ValueError if garbled)."""
    return json.loads(response.content.decode("utf-8"), parse_float=Decimal)


def dumps_exact(obj: Any) -> bytes:
    marks: dict[str, str] = {}

    def swap(value: Any) -> Any:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"not a finite amount: {value}")
            mark = f"__dec_{uuid.uuid4().hex}__"
            marks[mark] = format(value, "f")
            return mark
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [swap(v) for v in value]
        return value

    text = json.dumps(swap(obj), ensure_ascii=False)
    for mark, number in marks.items():
        text = text.replace(f'"{mark}"', number)
    return text.encode("utf-8")
