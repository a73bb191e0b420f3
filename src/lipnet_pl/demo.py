"""``make demo`` == ``python -m lipnet_pl.demo [training overrides]``: synthetic LIP -> train
LIP-Net on CPU -> evaluate (flip TTA) -> predict -> figures, in one run dir (conf/demo.yaml)."""

from lipnet_pl.cli import hydra_command
from lipnet_pl.workflows.demo import demo

main = hydra_command("demo", demo)

if __name__ == "__main__":
    main()
