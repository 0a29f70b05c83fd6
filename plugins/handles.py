"""Numbers a provider must persist before it calls out: the handle store.

Some protocols want their own numeric handle instead of our idempotency key (QIWI's
payment ``id``, WebMoney's ``tranid``) or a counter that only ever grows across every
worker on every host (WebMoney's ``reqn``).  A provider asks its :attr:`PayoutProvider.handles`:

* ``number_for(key)`` — the same positive integer for the same idempotency key, durable
  (committed) before it is returned, so a retry after a crash reuses it;
* ``next_counter(name)`` — a strictly increasing positive integer, shared by all processes.

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


class MemoryHandleStore:
    """A process-local store: enough for one process (tests), never for several workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._numbers: dict[tuple[str, str], int] = {}
        self._next_number = itertools.count(1)
        self._counters: dict[tuple[str, str], int] = {}

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
