"""Striped path locks: several held at once, in any order of names, never deadlock and still exclude."""

from __future__ import annotations

import threading

from s3bp.locks import StripedLocks


def test_holders_of_several_locks_in_opposite_orders_never_wait_for_each_other_in_a_circle(tmp_path):
    locks = StripedLocks(tmp_path / "locks", "path", stripes=8)
    names = [f"/data/f{i}" for i in range(6)]
    done = []

    def hold(order):
        for _ in range(300):
            with locks.hold_all(order):
                pass
        done.append(order)

    threads = [threading.Thread(target=hold, args=(o,), daemon=True) for o in (names, names[::-1], names[2:] + names[:2])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(done) == 3  # a circular wait would leave a thread blocked for good
    locks.close()


def test_a_held_batch_excludes_a_single_holder_of_any_of_its_names(tmp_path):
    locks = StripedLocks(tmp_path / "locks", "path")
    order = []
    entered = threading.Event()

    def single():
        entered.wait(10)
        with locks.hold("/data/b"):
            order.append("single")

    t = threading.Thread(target=single, daemon=True)
    t.start()
    with locks.hold_all(["/data/a", "/data/b", "/data/b"]):  # a name given twice is held once
        entered.set()
        t.join(0.3)
        order.append("batch")
    t.join(10)
    assert order == ["batch", "single"]
    locks.close()
