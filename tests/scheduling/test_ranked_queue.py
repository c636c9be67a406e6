"""RankedQueue: key order, aging, the hard maximum wait, the pending tier, re-insertion."""

import random

import pytest

from pars.scheduling import AgingRule, RankedQueue


def drain(queue: RankedQueue) -> list:
    return [queue.pop() for _ in range(len(queue))]


def test_smallest_size_pops_first_and_ties_go_by_arrival():
    queue: RankedQueue[str] = RankedQueue(AgingRule())
    for name, arrival, size in [("long", 0.0, 9.0), ("short", 1.0, 1.0), ("mid_a", 2.0, 5.0), ("mid_b", 3.0, 5.0)]:
        queue.set_size(name, size)
        queue.add(name, arrival)
    assert list(queue) == ["short", "mid_a", "mid_b", "long"]
    assert drain(queue) == ["short", "mid_a", "mid_b", "long"]


@pytest.mark.parametrize("rate, first", [(1.0, "old_long"), (0.0, "new_short")])
def test_aging_lets_an_old_long_request_pass_fresh_short_ones_only_when_on(rate, first):
    queue: RankedQueue[str] = RankedQueue(AgingRule(rate=rate))
    queue.set_size("old_long", 10.0)
    queue.add("old_long", 0.0)
    queue.set_size("new_short", 3.0)
    queue.add("new_short", 8.0)  # with rate 1, it waited 8 s less: 10 - 0 > 3 + 8 is false
    assert queue.pop() == first


def test_request_past_max_wait_goes_first_then_key_order_resumes():
    queue: RankedQueue[str] = RankedQueue(AgingRule(rate=0.0, max_wait_s=5.0))
    queue.set_size("long", 100.0)
    queue.add("long", 0.0)
    for i in range(3):
        queue.set_size(f"short{i}", 1.0)
        queue.add(f"short{i}", 1.0 + i)
    queue.set_clock(4.9)
    assert queue.peek() == "short0"
    queue.set_clock(5.0)
    assert queue.peek() == "long"
    assert drain(queue) == ["long", "short0", "short1", "short2"]


def test_starvation_bound_holds_under_a_steady_stream_of_short_requests():
    """Simulate one slot freeing per second and a short request arriving every 0.5 s."""
    max_wait = 10.0
    queue: RankedQueue[str] = RankedQueue(AgingRule(rate=0.0, max_wait_s=max_wait))
    queue.set_size("long", 50.0)
    queue.add("long", 0.0)
    started: dict[str, float] = {}
    for tick in range(1, 100):
        now = tick * 0.5
        queue.set_size(f"s{tick}", 1.0)
        queue.add(f"s{tick}", now)
        if tick % 2 == 0:
            queue.set_clock(now)
            started[queue.pop()] = now
    assert started["long"] - 0.0 <= max_wait + 1.0  # one admission interval of slack
    assert started["long"] >= max_wait  # it did not go earlier: the shorts really were preferred


def test_pending_requests_come_after_sized_ones_in_arrival_order_and_move_when_sized():
    queue: RankedQueue[str] = RankedQueue(AgingRule())
    queue.add("p1", 0.0)
    queue.add("p2", 1.0)
    queue.set_size("sized", 50.0)
    queue.add("sized", 2.0)
    assert list(queue) == ["sized", "p1", "p2"]
    queue.set_size("p2", 1.0)
    assert list(queue) == ["p2", "sized", "p1"]
    assert queue.pop() == "p2"


def test_pending_request_still_obeys_max_wait():
    queue: RankedQueue[str] = RankedQueue(AgingRule(max_wait_s=2.0))
    queue.add("pending", 0.0)
    queue.set_size("sized", 1.0)
    queue.add("sized", 1.0)
    queue.set_clock(2.5)
    assert queue.pop() == "pending"


def test_readded_request_returns_to_its_keyed_place_and_forget_drops_its_size():
    queue: RankedQueue[str] = RankedQueue(AgingRule())
    for name, size in [("a", 1.0), ("b", 2.0), ("c", 3.0)]:
        queue.set_size(name, size)
        queue.add(name, 0.0)
    first = queue.pop()
    queue.add(first, 0.0)  # skipped for a step, comes back
    assert list(queue) == ["a", "b", "c"]
    queue.forget("a")
    assert "a" not in queue and not queue.has_size("a") and len(queue) == 2


def test_remove_and_peek_on_empty():
    queue: RankedQueue[str] = RankedQueue(AgingRule())
    with pytest.raises(IndexError):
        queue.peek()
    queue.add("x", 0.0)
    queue.remove_many(["x", "never-added"])
    assert not queue
    with pytest.raises(IndexError):
        queue.pop()


def test_random_operations_never_lose_or_duplicate_an_item():
    rng = random.Random(0)
    queue: RankedQueue[int] = RankedQueue(AgingRule(rate=0.3, max_wait_s=20.0))
    inside: set[int] = set()
    popped: list[int] = []
    for step in range(3000):
        queue.set_clock(step * 0.1)
        action = rng.random()
        if action < 0.45:
            queue.add(step, step * 0.1)
            inside.add(step)
        elif action < 0.6 and inside:
            item = rng.choice(sorted(inside))
            queue.set_size(item, rng.uniform(0, 10))
        elif action < 0.7 and inside:
            item = rng.choice(sorted(inside))
            queue.remove(item)
            inside.discard(item)
        elif inside:
            item = queue.pop()
            assert item in inside
            inside.discard(item)
            popped.append(item)
        assert len(queue) == len(inside)
        assert sorted(queue) == sorted(inside)
    assert len(popped) == len(set(popped))


def test_iteration_order_matches_pop_order():
    rng = random.Random(1)
    queue: RankedQueue[int] = RankedQueue(AgingRule(rate=0.5, max_wait_s=30.0))
    for i in range(200):
        if rng.random() < 0.8:
            queue.set_size(i, rng.uniform(0, 20))
        queue.add(i, rng.uniform(0, 60))
    queue.set_clock(60.0)
    assert list(queue) == drain(queue)


def test_fcfs_relative_bound_serves_the_oldest_first_once_it_waited_factor_times_the_current_fcfs_wait():
    queue: RankedQueue[str] = RankedQueue(AgingRule(rate=0.0, fcfs_wait_factor=2.0))
    for t in range(6):  # six admissions one second apart: 1 request/s
        queue.set_clock(float(t))
        queue.add(f"old{t}", float(t))
        queue.set_size(f"old{t}", 0.0)
        queue.pop()
    queue.add("long", 10.0)
    queue.set_size("long", 9.0)
    for name in ("a", "b", "c"):
        queue.add(name, 12.0)
        queue.set_size(name, 0.0)
    queue.set_clock(17.9)  # 4 waiting at 1 request/s: FCFS wait 4 s, bound 8 s; "long" waited 7.9 s
    assert queue.peek() == "a"
    queue.set_clock(18.0)
    assert queue.pop() == "long"
    queue.set_clock(18.0)  # 3 waiting now: bound 6 s, and a, b, c waited 6 s: oldest first among them
    assert queue.pop() == "a"
