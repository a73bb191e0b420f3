"""SlurmRequeue: the ranks agree on a signal that reached any of them, not rank 0's only."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import torch

from lipnet_pl.engine.requeue import SlurmRequeue


class TwoRanks:
    """A strategy seen from rank 1 of 2, where only rank 1 got the signal."""

    def __init__(self, others: int) -> None:
        self.others = others  # rank 0's flag

    def broadcast(self, obj, src=0):
        return self.others

    def reduce(self, tensor, reduce_op=None):
        assert str(reduce_op).lower().endswith("max"), reduce_op
        return torch.maximum(tensor, torch.tensor(self.others, dtype=tensor.dtype))


def test_a_signal_that_reached_one_rank_only_stops_every_rank():
    callback = SlurmRequeue(check_every_n_steps=1)
    callback.received = int(signal.SIGUSR1)  # this rank (1) was signalled, rank 0 was not
    trainer = SimpleNamespace(strategy=TwoRanks(others=0))
    module = SimpleNamespace(device=torch.device("cpu"))
    assert callback._agreed_signal(trainer, module) == signal.SIGUSR1

    callback.received = 0  # the other way round: rank 0 got it
    trainer = SimpleNamespace(strategy=TwoRanks(others=int(signal.SIGTERM)))
    assert callback._agreed_signal(trainer, module) == signal.SIGTERM
