"""QIWI's history budget in the in-process handle store and in the provider: at most N history
calls per wallet per minute, then ``unknown``/``rate_limited`` with ``retry_after`` and no call."""
from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from payment_providers.qiwi.provider import QiwiProvider
from payment_providers.qiwi.sandbox import QiwiSandbox
from plugins import ErrorCode, MemoryHandleStore, PayoutRequest, PayoutStatus
from plugins.handles import seconds_to_next_window, window_of

T0 = 1_700_000_040.0  # the start of a minute (divisible by 60)


def test_window_arithmetic() -> None:
    assert window_of(T0, 60) == window_of(T0 + 59.999, 60) == window_of(T0 + 60, 60) - 1
    assert seconds_to_next_window(T0 + 15, 60) == pytest.approx(45)
    with pytest.raises(ValueError):
        window_of(T0, 0)


def test_memory_budget_exact_limit_and_rollover() -> None:
    store = MemoryHandleStore()
    grants = [store.take("qiwi", "history:1", 60, 3, T0 + i) for i in range(5)]
    assert grants == [True, True, True, False, False]
    assert store.take("qiwi", "history:2", 60, 3, T0)  # another wallet has its own budget
    assert store.take("webmoney", "history:1", 60, 3, T0)  # and another provider
    assert store.take("qiwi", "history:1", 60, 3, T0 + 60)  # next window: fresh budget
    assert [store.take("qiwi", "history:1", 60, 3, T0 + 61) for _ in range(3)] == [True, True, False]
    # a caller whose clock is behind counts against the later window, never reopens its own
    assert store.take("qiwi", "history:1", 60, 3, T0 + 1) is False


def test_memory_budget_threads_get_exactly_the_limit() -> None:
    store, grants, barrier = MemoryHandleStore(), [], threading.Barrier(20)

    def work() -> None:
        barrier.wait()
        grants.append(store.take("qiwi", "history:1", 60, 10, T0))

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(grants).count(True) == 10 and len(grants) == 20


def test_setting_is_checked_and_defaults_to_100_in_any_60_seconds() -> None:
    settings = {"credentials": {"token": "t", "wallet": "+79990000000"}}
    provider = QiwiProvider(settings)
    assert provider.history_budget_per_minute == 100
    # any 60 s overlap at most 7 ten-second windows: 7 × 14 = 98 <= 100
    assert provider.WINDOWS_PER_MINUTE_SPAN * provider.history_calls_per_window <= 100
    for bad in (0, 6, 101, "90", True):
        with pytest.raises(ValueError):
            QiwiProvider({**settings, "history_budget_per_minute": bad})


def test_spent_budget_is_unknown_with_retry_after_and_calls_nobody() -> None:
    with QiwiSandbox(settle_after=0.0, history_limit=100) as sandbox:
        provider = QiwiProvider({"base_url": sandbox.url, "connect_timeout": 0.5,
                                 "read_timeout": 0.5, "history_budget_per_minute": 14,  # 2 a window
                                 "credentials": {"token": "sandbox-token", "wallet": "+79990000000"}})
        now = [T0 + 20]
        provider.clock = lambda: now[0]
        request = PayoutRequest("b-1", Decimal("100.00"), "RUB", "+79161234567")
        assert provider.submit(request, "b-1").status is PayoutStatus.ACCEPTED
        sandbox.settle()
        assert provider.status("b-1", request).status is PayoutStatus.SUCCEEDED
        assert provider.status("b-1", request).status is PayoutStatus.SUCCEEDED
        calls = len(sandbox._history_calls)
        held = provider.status("b-1", request)
        assert (held.status, held.error) == (PayoutStatus.UNKNOWN, ErrorCode.RATE_LIMITED)
        assert held.retry_after == timedelta(seconds=10)  # the next 10-second window
        assert len(sandbox._history_calls) == calls  # QIWI was not asked
        assert len(sandbox.transfers()) == 1  # never resubmitted
        now[0] = T0 + 60  # the next minute
        assert provider.status("b-1", request).status is PayoutStatus.SUCCEEDED
