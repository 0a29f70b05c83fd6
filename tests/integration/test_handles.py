"""The database handle store: durable numbers per key, counters that only grow — across threads."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from portal import providers
from portal.services.handles import DbHandleStore


@pytest.mark.parametrize("which", ["postgresql", "sqlite"])
def test_numbers_are_stable_per_key_and_distinct(request, which, clean_db):
    app = request.getfixturevalue("app" if which == "postgresql" else "sqlite_app")
    with app.app_context():
        store = DbHandleStore()
        a, b = store.number_for("qiwi", "key-a"), store.number_for("qiwi", "key-b")
        assert a != b and a > 0 and b > 0
        assert store.number_for("qiwi", "key-a") == a  # a retry after a crash reuses the number
        first, second = store.next_counter("webmoney", "reqn"), store.next_counter("webmoney", "reqn")
        assert second > first > 0


def test_concurrent_callers_never_share_or_reuse(app, clean_db):
    """Twelve threads: every key gets one number, every counter value is handed out once."""
    numbers, counters = [], []
    barrier = threading.Barrier(12)

    def work(i: int) -> None:
        with app.app_context():
            store = DbHandleStore()
            barrier.wait()
            numbers.append(store.number_for("qiwi", f"k{i % 6}"))
            counters.extend(store.next_counter("webmoney", "reqn") for _ in range(5))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(set(numbers)) == 6  # six keys, six numbers, whoever asked first
    assert sorted(counters) == list(range(1, 61))


def test_every_provider_is_bound_to_the_database_store(app):
    assert all(isinstance(p.handles, DbHandleStore) for p in providers.all_providers(app).values())


# --------------------------------------------------------------------------- rate budgets (take)

T0 = 1_700_000_040.0  # the start of a minute


@pytest.mark.parametrize("which", ["postgresql", "sqlite"])
def test_budget_grants_exactly_the_limit_per_window(request, which, clean_db):
    app = request.getfixturevalue("app" if which == "postgresql" else "sqlite_app")
    with app.app_context():
        store = DbHandleStore()
        assert [store.take("qiwi-budget", "history:t1", 60, 3, T0 + i) for i in range(5)] == [
            True, True, True, False, False]
        assert store.take("qiwi-budget", "history:t2", 60, 3, T0)  # another wallet, its own budget
        assert store.take("qiwi-budget", "history:t1", 60, 3, T0 + 60)  # the next window: fresh
        assert [store.take("qiwi-budget", "history:t1", 60, 3, T0 + 119) for _ in range(3)] == [True, True, False]
        assert store.take("qiwi-budget", "history:t1", 60, 3, T0 + 30) is False  # a clock behind: no reopening
        assert store.take("qiwi-budget", "history:t1", 60, 3, T0 + 3600)  # a window much later
        # one row per bucket, whatever the number of windows
        from portal.extensions import db
        from portal.models.payouts import ProviderCounter
        names = db.session.execute(sa.select(ProviderCounter.name).where(
            ProviderCounter.provider_code == "qiwi-budget")).scalars().all()
        assert sorted(names) == ["history:t1", "history:t2"]
        assert store.next_counter("qiwi-budget", "reqn") == 1  # counters are untouched by budgets
        with pytest.raises(ValueError):
            store.take("qiwi-budget", "x" * 31, 60, 3, T0)


def test_budget_twenty_threads_get_exactly_ten_grants(app, clean_db):
    """Twenty workers take from a budget of 10 at the same moment: exactly 10 grants."""
    grants: list[bool] = []
    barrier = threading.Barrier(20)

    def work() -> None:
        with app.app_context():
            store = DbHandleStore()
            barrier.wait()
            grants.append(store.take("qiwi-budget", "history:conc", 60, 10, T0))

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(grants) == 20 and grants.count(True) == 10
    with app.app_context():
        assert DbHandleStore().take("qiwi-budget", "history:conc", 60, 10, T0 + 60)  # next minute
