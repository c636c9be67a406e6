"""AgingRule and NeutralSize: the key rule and the fallback size."""

import math

import pytest

from pars.scheduling import AgingRule, NeutralSize


def test_static_key_orders_like_the_aged_key_at_any_time():
    rule = AgingRule(rate=0.5)
    requests = [(4.0, 0.0), (2.0, 3.0), (3.0, 1.5)]  # (size, arrival)
    for now in (5.0, 50.0):
        aged = sorted(requests, key=lambda r: r[0] - rule.rate * (now - r[1]))
        static = sorted(requests, key=lambda r: rule.static_key(r[0], r[1], epoch=0.0))
        assert aged == static


def test_overdue_exactly_at_max_wait():
    rule = AgingRule(max_wait_s=3.0)
    assert not rule.is_overdue(arrival=10.0, now=12.9)
    assert rule.is_overdue(arrival=10.0, now=13.0)
    assert not AgingRule().is_overdue(arrival=0.0, now=1e12)


def test_the_bound_is_the_tighter_of_the_fixed_and_the_fcfs_relative_one():
    assert AgingRule(max_wait_s=3.0).max_wait(fcfs_wait_s=100.0) == 3.0
    assert AgingRule().max_wait(fcfs_wait_s=0.0) == math.inf
    rule = AgingRule(max_wait_s=60.0, fcfs_wait_factor=2.0)
    assert rule.max_wait(fcfs_wait_s=4.0) == 8.0 and rule.is_overdue(arrival=10.0, now=18.0, fcfs_wait_s=4.0)
    assert rule.max_wait(fcfs_wait_s=math.inf) == 60.0


def test_fcfs_wait_estimate_is_the_queue_ahead_over_the_admission_rate():
    from pars.scheduling.keys import AdmissionRate

    rate = AdmissionRate(window_s=1.5, min_span_s=1.0)
    assert rate.fcfs_wait_s(10) == math.inf
    rate.observe(0.0)
    rate.observe(0.001)
    assert rate.per_second() is None, "a rate over a millisecond was trusted"
    for t in (0.5, 1.0, 1.5, 2.0):
        rate.observe(t)
    assert rate.per_second() == 2.0 and rate.fcfs_wait_s(10) == 5.0


def test_the_admission_rate_is_known_at_gpu_rates_too():
    from pars.scheduling.keys import AdmissionRate

    rate = AdmissionRate()  # defaults: 30 s window, trusted once it spans 5 s
    for i in range(1001):  # 200 admissions a second for 5 s
        rate.observe(i / 200)
    assert rate.per_second() == pytest.approx(200.0)
    for i in range(1, 31):  # then one a second for 30 s: the old burst leaves the window
        rate.observe(5.0 + i)
    assert rate.per_second() == pytest.approx(1.0)


@pytest.mark.parametrize("rate, max_wait, factor", [(-1.0, 1.0, 2.0), (math.nan, 1.0, 2.0), (0.0, 0.0, 2.0),
                                                    (0.0, -5.0, 2.0), (0.0, 1.0, 0.5), (0.0, 1.0, math.nan)])
def test_bad_aging_settings_are_rejected(rate, max_wait, factor):
    with pytest.raises(ValueError):
        AgingRule(rate=rate, max_wait_s=max_wait, fcfs_wait_factor=factor)


def test_neutral_size_is_the_recent_mean_and_zero_before_any():
    neutral = NeutralSize(window=2)
    assert neutral.assign("a") == 0.0
    for size in (10.0, 2.0, 4.0):
        neutral.observe(size)
    assert neutral.mean == 3.0


def test_the_neutral_size_holds_while_a_request_that_got_it_is_unfinished():
    """Before this rule a fallback request got the running mean at its arrival, so two fallback requests
    could swap order when estimates in between moved the mean down."""
    neutral = NeutralSize()
    neutral.observe(10.0)
    first = neutral.assign("first")
    neutral.observe(0.0)  # the mean drops to 5
    second = neutral.assign("second")
    assert first == second == 10.0
    neutral.release("first")
    neutral.release("second")
    assert neutral.assign("third") == 5.0


def test_fallback_requests_keep_arrival_order_in_the_queue_while_estimates_move_the_mean():
    from pars.scheduling import RankedQueue

    neutral, queue = NeutralSize(), RankedQueue(AgingRule(rate=0.05))
    for i in range(20):
        neutral.observe(float(20 - i))  # falling estimates: a running mean would rank later fallbacks first
        queue.add(f"fallback-{i}", arrival=float(i))
        queue.set_size(f"fallback-{i}", neutral.assign(f"fallback-{i}"))
    queue.set_clock(20.0)
    assert [queue.pop() for _ in range(20)] == [f"fallback-{i}" for i in range(20)]
