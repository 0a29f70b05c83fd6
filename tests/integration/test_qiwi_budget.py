"""QIWI's history budget end to end: workers bound to the database handle store never push the
sandbox wallet (``history_limit=100``) into its five-minute 423 block; the checks held back come
back unknown/rate_limited with ``retry_after`` and settle in the next minute."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from payment_providers.qiwi.provider import QiwiProvider
from payment_providers.qiwi.sandbox import QiwiSandbox
from plugins import ErrorCode, PayoutRequest, PayoutStatus
from portal.services.handles import DbHandleStore

T0 = 1_700_000_040.0  # the start of a minute


@pytest.fixture
def sandbox() -> Iterator[QiwiSandbox]:
    with QiwiSandbox(settle_after=0.0, history_limit=100) as running:
        yield running


def _worker(sandbox: QiwiSandbox, now: list[float]) -> QiwiProvider:
    provider = QiwiProvider({"base_url": sandbox.url, "connect_timeout": 0.5, "read_timeout": 1.0,
                             "credentials": {"token": "sandbox-token", "wallet": "+79990000000"}})
    provider.bind_handles(DbHandleStore())
    provider.clock = lambda: now[0]  # one budget window for the whole burst
    return provider


def test_over_100_checks_a_minute_never_block_the_wallet(app, clean_db, sandbox):
    now = [T0 + 5]
    with app.app_context():
        workers = [_worker(sandbox, now), _worker(sandbox, now)]  # two workers, one wallet
        per_window = workers[0].history_calls_per_window  # 14 of the default 100 in any 60 s
        keys = [f"qb-{i}" for i in range(6)]
        requests_ = {key: PayoutRequest(key, Decimal("100.00"), "RUB", "+79161234567") for key in keys}
        for key in keys:
            assert workers[0].submit(requests_[key], key).status is PayoutStatus.ACCEPTED
        sandbox.settle()
        results = [workers[i % 2].status(keys[i % 6], requests_[keys[i % 6]]) for i in range(130)]
        assert len(sandbox._history_calls) == per_window  # one window's budget, shared by both workers
        settled = [r for r in results if r.status is PayoutStatus.SUCCEEDED]
        held = [r for r in results if r.status is not PayoutStatus.SUCCEEDED]
        assert len(settled) == per_window and len(held) == 130 - per_window
        assert all((r.status, r.error) == (PayoutStatus.UNKNOWN, ErrorCode.RATE_LIMITED) for r in held)
        assert all(r.retry_after == timedelta(seconds=5) for r in held)
        # a burst on both sides of a window boundary (fixed windows' weak spot) stays in budget
        for moment in (T0 + 59.9, T0 + 60.1):
            now[0] = moment
            for i in range(130):
                workers[i % 2].status(keys[i % 6], requests_[keys[i % 6]])
        assert len(sandbox._history_calls) == 3 * per_window <= 100  # all inside the sandbox's minute
        assert sandbox._blocked_until == 0.0  # the sandbox's 423 block never started
        assert len(sandbox.transfers()) == 6  # nothing was resubmitted
        # a later window: the held-back checks are asked again and settle
        now[0] = T0 + 75
        again = [workers[1].status(key, requests_[key]) for key in keys]
        assert all(r.status is PayoutStatus.SUCCEEDED for r in again)
        assert sandbox._blocked_until == 0.0
