"""Token buckets per key (``gateway.limits``), on a fake clock."""

from __future__ import annotations

import pytest

from gateway.limits import RateLimiter, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_spends_its_burst_then_waits_for_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(10, burst=20, clock=clock)
    assert limiter.take("a", 20) == 0.0
    assert limiter.take("a", 5) == pytest.approx(0.5)  # refused: nothing spent
    assert limiter.take("b", 20) == 0.0, "another key has its own bucket"
    clock.now += 0.5
    assert limiter.take("a", 5) == 0.0
    assert limiter.take("a", 1) == pytest.approx(0.1)


def test_a_request_larger_than_the_burst_waits_for_a_full_bucket() -> None:
    clock = Clock()
    limiter = RateLimiter(10, burst=20, clock=clock)
    assert limiter.take("a", 15) == 0.0
    assert limiter.take("a", 500) == pytest.approx(1.5)
    clock.now += 1.5
    assert limiter.take("a", 500) == 0.0


def test_rate_zero_is_no_limit_and_retry_after_is_whole_seconds() -> None:
    assert RateLimiter(0).take("a", 10**9) == 0.0
    assert retry_after(0.01) == "1"
    assert retry_after(1.2) == "2"
