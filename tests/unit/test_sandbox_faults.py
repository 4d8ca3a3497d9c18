"""Fault settings and the seeded dice, without HTTP."""

from __future__ import annotations

from collections import Counter

import pytest

from sync.sandbox.faults import Dice, Faults


def test_updated_checks_each_setting() -> None:
    faults = Faults().updated({"error_rate": 0.25, "rate_limit": 10, "fail_all": True})
    assert (faults.error_rate, faults.rate_limit, faults.fail_all) == (0.25, 10.0, True)
    for bad in (
        {"error_rate": -0.1},
        {"drop_rate": 1.5},
        {"latency": -1},
        {"rate_limit": 0},
        {"error_status": 404},
        {"max_page_size": 0},
        {"seed": "x"},
        {"unknown": 1},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Faults().updated(bad)


def test_verdict_bands_match_the_rates() -> None:
    dice = Dice(seed=123)
    faults = Faults(drop_rate=0.1, error_rate=0.2, throttle_rate=0.3)
    seen = Counter(dice.verdict(faults) for _ in range(10_000))
    assert abs(seen["drop"] - 1000) < 200
    assert abs(seen["error"] - 2000) < 250
    assert abs(seen["throttle"] - 3000) < 300
    assert abs(seen[None] - 4000) < 300


def test_no_faults_draws_nothing() -> None:
    dice = Dice(seed=1)
    state = dice.rng.getstate()
    assert dice.verdict(Faults()) is None
    assert dice.drop_after_apply(Faults()) is False
    assert dice.latency(Faults()) == 0.0
    assert dice.rng.getstate() == state


def test_same_seed_same_sequence() -> None:
    faults = Faults(error_rate=0.5)
    a, b = Dice(seed=9), Dice(seed=9)
    sequence = [a.verdict(faults) for _ in range(50)]
    assert sequence == [b.verdict(faults) for _ in range(50)]
    assert set(sequence) == {"error", None}


def test_error_status_is_fixed_or_drawn() -> None:
    dice = Dice(seed=5)
    assert dice.error_status(Faults(error_status=504)) == 504
    assert {dice.error_status(Faults()) for _ in range(200)} == {500, 502, 503}


def test_rate_limit_sliding_window() -> None:
    dice = Dice()
    faults = Faults(rate_limit=3)
    assert [dice.rate_limited(faults, t) for t in (0.0, 0.1, 0.2)] == [None, None, None]
    wait = dice.rate_limited(faults, 0.5)
    assert wait == pytest.approx(0.5)
    assert dice.rate_limited(faults, 1.0) is None  # the first request left the window
    assert dice.rate_limited(faults, 1.05) == pytest.approx(0.05)


def test_fractional_rate_limit_widens_the_window() -> None:
    dice = Dice()
    faults = Faults(rate_limit=0.5)  # one request per two seconds
    assert dice.rate_limited(faults, 0.0) is None
    assert dice.rate_limited(faults, 1.5) == pytest.approx(0.5)
    assert dice.rate_limited(faults, 2.0) is None
