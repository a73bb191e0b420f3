"""``python -m lipnet_pl.train [experiment=...] [overrides]``: fit a model (conf/train.yaml).

Multirun sweeps (``-m``) keep failed jobs as rows, skip finished jobs when relaunched
(:mod:`lipnet_pl.sweeps.jobs`) and write a summary table in the sweep dir; see docs/training.md.
"""

from lipnet_pl.cli import hydra_command
from lipnet_pl.sweeps.jobs import sweep_job
from lipnet_pl.training.train import train

main = hydra_command(
    "train", sweep_job(train), objective=lambda summary: summary.get("best_val_miou")
)

if __name__ == "__main__":
    main()
