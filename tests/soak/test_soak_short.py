"""The short fault soak (CI): about a minute of concurrent postbacks, withdrawals, approvals
and claims through gunicorn, two `cashback worker` processes, the janitor and every provider
sandbox, while workers are killed, sandboxes drop/5xx/stall/go down, Redis restarts and
PostgreSQL connections are terminated.  The load lasts 30 s with a fault every 4 s, and goes
on until every kind of fault was injected at least once (a busy machine makes faults come later);
the checks are the long run's.  See ``tests/soak/harness.py``; the long version is
``bench/soak.py --minutes N``.
"""
from __future__ import annotations

import shutil

import pytest

from tests.soak.harness import FAULT_KINDS, REDIS_SERVER, SoakConfig, run

pytestmark = [pytest.mark.soak, pytest.mark.slow]


@pytest.mark.skipif(shutil.which(REDIS_SERVER) is None, reason="redis-server is not installed")
def test_soak_short(capsys, pg_template):
    result = run(SoakConfig(seconds=30, until_every_fault=True, workers=2, fault_every=4, drain_seconds=45,
                            template=pg_template))
    with capsys.disabled():
        print("\n" + result.table())

    # the load really happened, and every kind of fault was injected at least once
    assert result.figures["payouts created"] > 20, result.table()
    assert result.figures["network events stored"] > 50, result.table()
    assert all(result.faults[kind] >= 1 for kind in FAULT_KINDS), result.faults
    # the four checks
    assert result.ledger_ok, result.ledger_summary
    assert result.payouts_match, result.payout_problems
    assert not result.stuck, result.stuck
    assert not result.postback_problems, result.postback_problems
    # no worker or janitor ended by itself (a Redis restart or a killed connection used to end them)
    assert not result.crashes, result.crashes
