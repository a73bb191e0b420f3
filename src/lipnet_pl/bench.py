"""``python -m lipnet_pl.bench [only=[lipnet]]`` (``make bench``): speed of LIP-Net and its peers
per backend on this machine (conf/bench.yaml)."""

from lipnet_pl.benchmark.suite import bench
from lipnet_pl.cli import hydra_command

main = hydra_command("bench", bench)

if __name__ == "__main__":
    main()
