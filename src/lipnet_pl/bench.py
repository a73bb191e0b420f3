"""``python -m lipnet_pl.bench [only=[lipnet]]`` (``make bench``): speed of LIP-Net and its peers
per backend on this machine (conf/bench.yaml)."""

import os

# OpenMP threads that finished a parallel region sleep instead of spinning: spinning threads
# took the cores from ONNX Runtime measured next in the same process and, on a shared machine,
# from each other (lipnet_rt eager at batch 1: 1528 ms spinning vs 113 ms passive under load;
# docs/benchmarks.md). libgomp reads it once, when torch loads: before any torch import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from lipnet_pl.benchmark.suite import bench  # noqa: E402
from lipnet_pl.cli import hydra_command  # noqa: E402

main = hydra_command("bench", bench)

if __name__ == "__main__":
    main()
