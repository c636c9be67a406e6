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


@pytest.mark.parametrize("rate, max_wait", [(-1.0, 1.0), (math.nan, 1.0), (0.0, 0.0), (0.0, -5.0)])
def test_bad_aging_settings_are_rejected(rate, max_wait):
    with pytest.raises(ValueError):
        AgingRule(rate=rate, max_wait_s=max_wait)


def test_neutral_size_is_the_recent_mean_and_zero_before_any():
    neutral = NeutralSize(window=2)
    assert neutral.value == 0.0
    for size in (10.0, 2.0, 4.0):
        neutral.observe(size)
    assert neutral.value == 3.0
