"""The database handle store: durable numbers per key, counters that only grow — across threads."""
from __future__ import annotations

import threading

import pytest

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
