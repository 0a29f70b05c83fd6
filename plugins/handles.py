"""Numbers a provider must persist before it calls out: the handle store.

Some protocols want their own numeric handle instead of our idempotency key (QIWI's
payment ``id``, WebMoney's ``tranid``) or a counter that only ever grows across every
worker on every host (WebMoney's ``reqn``).  A provider asks its :attr:`PayoutProvider.handles`:

* ``number_for(key)`` — the same positive integer for the same idempotency key, durable
  (committed) before it is returned, so a retry after a crash reuses it;
* ``next_counter(name)`` — a strictly increasing positive integer, shared by all processes;
* ``take(bucket, window_seconds, limit, now)`` — one unit of a rate budget shared by all
  processes: at most ``limit`` grants per fixed window ``[k * window_seconds,
  (k + 1) * window_seconds)`` of the Unix time ``now`` (QIWI's history: 100 calls a minute).

The core binds a database-backed store (``portal.services.handles``); a provider built
on its own (unit tests, the conformance kit) gets :class:`MemoryHandleStore`.
"""
from __future__ import annotations

import itertools
import threading
from typing import Protocol


class HandleStore(Protocol):
    def number_for(self, provider_code: str, idempotency_key: str) -> int:
        """The provider's numeric handle for ``idempotency_key`` (allocated once, durable)."""

    def next_counter(self, provider_code: str, name: str) -> int:
        """The next value of the counter ``name``: strictly increasing across all processes."""

    def take(self, provider_code: str, bucket: str, window_seconds: int, limit: int,
             now: float) -> bool:
        """Take one unit of the budget ``bucket``: True (granted) while fewer than ``limit`` were
        granted in the window of ``now`` (window number ``int(now // window_seconds)``), else
        False; atomic across all processes. A caller whose clock is behind the latest window
        seen counts against that later window (never reopens a spent one)."""


def window_of(now: float, window_seconds: int) -> int:
    """The number of the fixed window ``now`` (Unix seconds) falls in."""
    if isinstance(window_seconds, bool) or not isinstance(window_seconds, int) or window_seconds < 1:
        raise ValueError("window_seconds must be a positive integer")
    return int(now // window_seconds)


def seconds_to_next_window(now: float, window_seconds: int) -> float:
    """How long until the window after the one of ``now`` begins."""
    return (window_of(now, window_seconds) + 1) * window_seconds - now


class MemoryHandleStore:
    """A process-local store: enough for one process (tests), never for several workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers: dict[tuple[str, str], int] = {}
        self._next_number = itertools.count(1)
        self._counters: dict[tuple[str, str], int] = {}
        self._budgets: dict[tuple[str, str], tuple[int, int]] = {}  # -> (window, granted)

    def number_for(self, provider_code: str, idempotency_key: str) -> int:
        with self._lock:
            key = (provider_code, idempotency_key)
            if key not in self._numbers:
                self._numbers[key] = next(self._next_number)
            return self._numbers[key]

    def next_counter(self, provider_code: str, name: str) -> int:
        with self._lock:
            key = (provider_code, name)
            self._counters[key] = self._counters.get(key, 0) + 1
            return self._counters[key]

    def take(self, provider_code: str, bucket: str, window_seconds: int, limit: int,
             now: float) -> bool:
        window = window_of(now, window_seconds)
        with self._lock:
            key = (provider_code, bucket)
            seen, granted = self._budgets.get(key, (window, 0))
            if seen < window:
                seen, granted = window, 0
            if granted >= limit:
                return False
            self._budgets[key] = (seen, granted + 1)
            return True
