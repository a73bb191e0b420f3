"""Sweeps at cluster scale: what a Hydra multirun of ``python -m lipnet_pl.train`` adds to a job.

* :mod:`.jobs`: every job records its status (finished / failed with a one-line reason) in its
  stable folder, a failure does not end the sweep, a relaunch skips finished jobs;
* :mod:`.devices`: one device per job for the one-node parallel launcher (``hydra/launcher=local``);
* :mod:`.slurm`: the SLURM launcher sizing each job from its trainer (a job may be a DDP run);
* :mod:`.latency`: each finished job's network timed on the CPU at batch 1 (its summary's
  ``cpu_latency_ms``);
* :mod:`.stats`: the per-configuration summary over seeds (mean, std, noise test, the
  mIoU-vs-latency Pareto front) and its plot.
"""
