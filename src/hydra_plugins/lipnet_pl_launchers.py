"""lipnet_pl's SLURM launcher under the name Hydra requires (the ``hydra_plugins`` namespace).

Hydra imports this module while it scans for plugins at every start-up, so it stays light: the
work is in :mod:`lipnet_pl.sweeps.slurm`, imported when a sweep launches. Without the
``[cluster]`` extra (hydra-submitit-launcher) there is no such launcher and nothing to import.
"""

from __future__ import annotations

from collections.abc import Sequence

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
except ImportError:  # the [cluster] extra is not installed
    SlurmLauncher = None

if SlurmLauncher is not None:

    class SizedSlurmLauncher(SlurmLauncher):
        """hydra-submitit-launcher's SLURM launcher, each job sized from its own trainer."""

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int):
            from lipnet_pl.sweeps.slurm import launch  # torch & co: only when a sweep launches

            return launch(self, job_overrides, initial_job_idx)
