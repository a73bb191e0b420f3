"""The bench's interleaved rounds on calls that really take time (sleeps): the race and the stopping rule."""

from __future__ import annotations

import time

import torch

from lipnet_pl.benchmark.report import versus_line
from lipnet_pl.benchmark.runners import (
    Case,
    ModelInfo,
    RoundSettings,
    Variant,
    race_versus,
)
from lipnet_pl.core.timing import interleaved_rounds


def test_versus_races_best_against_reference_in_the_same_rounds():
    calls = []
    load = iter([1.0, 3.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0] * 4)  # per round, shared by both calls

    def sleeper(name, ms):
        def call():
            calls.append(name)
            time.sleep(ms * factor[0] / 1e3)

        return call

    factor = [1.0]
    cpu = torch.device("cpu")

    def next_round():
        factor[0] = next(load)

    race = {
        "reference": Variant("pytorch", "eager", sleeper("ref", 40.0), cpu),
        "best": Variant("onnxruntime", "int8", sleeper("best", 10.0), cpu),
    }
    # a round starts with the reference's untimed call: the load changes there, so all four
    # calls of a round (each network's re-warm, then its timed call) share it
    ref = race["reference"].call
    race["reference"].call = lambda: (calls and calls[-1] == "best" and next_round(), ref())
    case = Case(ModelInfo("lipnet_rt", 4.0, 5.2), cpu, "fp32", 1, (64, 64), 1, 0)
    settings = RoundSettings(min_rounds=6, max_rounds=6, tolerance=0.05, time_cap_s=60)
    v = race_versus("lipnet_rt", "lipnet", "onnxruntime int8 CPU", race, case, settings)
    assert calls[:2] == ["ref", "best"]  # one warm-up call each, then rounds of ...
    # ... an untimed re-warm and a timed call of each network (RACE_REWARM)
    assert calls[2:] == ["ref", "ref", "best", "best"] * 6 and v.rounds == 6
    assert 3.0 < v.speedup < 4.6 and v.ci_low <= v.speedup <= v.ci_high
    assert v.reference_ms > v.best_ms
    line = versus_line(v)
    assert line.startswith("lipnet_rt over lipnet eager: ") and "6 interleaved rounds" in line

    def broken():
        raise torch.OutOfMemoryError("CUDA out of memory")

    race["best"] = Variant("pytorch", "fast", broken, cpu)
    v = race_versus("lipnet_rt", "lipnet", "PyTorch fast fp32", race, case, settings)
    assert v.note == "OOM" and versus_line(v) == "lipnet_rt over lipnet eager: not measured (OOM)"


def test_rounds_interleave_and_stop_when_every_ci_is_tight():
    order = []
    steady = interleaved_rounds(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        torch.device("cpu"),
        min_rounds=3,
        max_rounds=1000,
        tolerance=float("inf"),  # any spread: converged at max(min_rounds, 6)
        time_cap_s=60,
    )
    assert steady.converged and order == ["a", "b"] * 6  # never from fewer than 6 rounds
    calls = []

    def noisy():  # alternately fast and 2 ms slow: the median's interval never tightens
        calls.append(1)
        time.sleep(0.002 * (len(calls) % 2))

    capped = interleaved_rounds(
        {"a": noisy}, torch.device("cpu"), 3, 1000, tolerance=0.05, time_cap_s=0.1
    )
    assert not capped.converged and 3 <= len(capped.times["a"]) < 1000
