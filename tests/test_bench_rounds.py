"""bench's round limits (issue 28, item 9): too few rounds never count as converged, and limits
that would time nothing are refused with one line naming the key."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from lipnet_pl.benchmark.suite import round_settings
from lipnet_pl.core.timing import interleaved_rounds, within
from lipnet_pl.errors import UserError

PROFILE = dict(min_rounds=1, max_rounds=8, ci_tolerance=0.05, time_cap_s=60)


def test_one_round_is_not_convergence():
    assert not within([3.0], 0.05)  # a zero-width interval from one value
    assert within([3.0] * 6, 0.05)
    rounds = interleaved_rounds({"a": lambda: None}, torch.device("cpu"), 1, 8, 0.5, 60.0)
    assert len(rounds.times["a"]) >= 6


@pytest.mark.parametrize(
    ("key", "value"), [("max_rounds", 0), ("min_rounds", 0), ("min_rounds", 9), ("time_cap_s", 0)]
)
def test_round_limits_that_time_nothing_are_refused(key, value):
    profile = OmegaConf.create({**PROFILE, key: value})
    with pytest.raises(UserError, match=r"cpu\.(min_rounds|ci_tolerance)="):
        round_settings(profile, "cpu")
    assert round_settings(OmegaConf.create(PROFILE), "cpu").max_rounds == 8


class FakeClock:
    """``time.perf_counter`` advanced by the callables themselves: timings without sleeps."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_race_times_each_network_after_an_untimed_call(monkeypatch):
    """The small network's first call after the big one costs 30 ms (cleared caches), the next
    ones 10 ms: the race (``rewarm=1``) times the steady calls, plain rounds the cold ones."""
    import lipnet_pl.core.timing as timing
    from lipnet_pl.benchmark.runners import RACE_REWARM

    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    state = {"cold": True}

    def big():
        clock.now += 0.2
        state["cold"] = True

    def small():
        clock.now += 0.03 if state["cold"] else 0.01
        state["cold"] = False

    fns = {"big": big, "small": small}
    cold = interleaved_rounds(fns, torch.device("cpu"), 6, 6, 0.05, 60.0)
    warm = interleaved_rounds(fns, torch.device("cpu"), 6, 6, 0.05, 60.0, rewarm=RACE_REWARM)
    assert cold.times["small"] == pytest.approx([30.0] * 6)
    assert warm.times["small"] == pytest.approx([10.0] * 6)
    assert warm.times["big"] == pytest.approx([200.0] * 6)
