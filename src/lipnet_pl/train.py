"""``python -m lipnet_pl.train [experiment=...] [overrides]``: fit a model (conf/train.yaml).

Multirun sweeps (``-m``) write a summary table in the sweep dir; see docs/training.md.
"""

from lipnet_pl.cli import hydra_command
from lipnet_pl.training.run import train

main = hydra_command("train", train, objective=lambda summary: summary.get("best_val_miou"))

if __name__ == "__main__":
    main()
