"""The sweep summary per configuration: jobs that differ only in their seed are one group.

Per configuration: n (finished jobs), mean and standard deviation (n-1) of the best val mIoU and
of the left/right mIoU, and whether its mean mIoU differs from the reference configuration's
(default ``model/dilations=paper``) by more than the noise: by more than TWO STANDARD ERRORS of
the difference, ``|m1 - m0| > 2 * sqrt(s1^2/n1 + s0^2/n0)`` (about a 95 % band; it needs two
seeds on both sides). ``sweep_summary.png`` draws the means with +/- one std error bars.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from lipnet_pl.hydra_runtime import SEED_KEYS

METRICS = ("best_val_miou", "best_val_lr_miou")


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def configuration_labels(rows: list[dict[str, Any]]) -> list[str]:
    """Each row's configuration: its overrides that vary across the sweep, seed left out."""
    parsed = [dict(_split(o) for o in row.get("overrides_list") or []) for row in rows]
    keys = sorted({k for p in parsed for k in p} - set(SEED_KEYS) - {"sweep_name"})
    varying = [k for k in keys if len({p.get(k) for p in parsed}) > 1]
    return [" ".join(f"{k}={p[k]}" for k in varying if k in p) or "all" for p in parsed]


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def differs(group: dict[str, Any], reference: dict[str, Any]) -> bool | None:
    """|mean difference| > 2 standard errors of the difference (None: fewer than 2 seeds)."""
    n1, n0 = group["n"], reference["n"]
    if n1 < 2 or n0 < 2:
        return None
    s1, s0 = group["best_val_miou_std"], reference["best_val_miou_std"]
    se = (s1**2 / n1 + s0**2 / n0) ** 0.5
    return abs(group["best_val_miou_mean"] - reference["best_val_miou_mean"]) > 2 * se


def group_rows(rows: list[dict[str, Any]], reference: str | None = None) -> list[dict[str, Any]]:
    """One dict per configuration, in first-seen order (see the module doc)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for label, row in zip(configuration_labels(rows), rows, strict=True):
        groups.setdefault(label, []).append(row)
    out = []
    for label, members in groups.items():
        done = [r for r in members if r.get("status", "finished") == "finished"]
        group: dict[str, Any] = {"configuration": label, "n": len(done), "jobs": len(members)}
        for metric in METRICS:
            values = [float(r[metric]) for r in done if r.get(metric) is not None]
            group[f"{metric}_mean"], group[f"{metric}_std"] = _mean_std(values)
        group["is_reference"] = reference is not None and reference in label.split(" ")
        out.append(group)
    ref = next((g for g in out if g["is_reference"]), None)
    for group in out:
        group["differs_from_reference"] = (
            None if ref is None or group is ref or group["n"] == 0 else differs(group, ref)
        )
    return out


def _pct(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def markdown(groups: list[dict[str, Any]]) -> str:
    """The per-configuration table."""
    lines = [
        "| configuration | n | best val mIoU (%) mean ± std | left/right mIoU (%) mean ± std "
        "| differs from reference (> 2 SE) |",
        "|---|---|---|---|---|",
    ]
    for g in groups:
        verdict = {True: "yes", False: "no", None: "-"}[g["differs_from_reference"]]
        verdict = "(reference)" if g["is_reference"] else verdict
        lines.append(
            f"| {g['configuration']} | {g['n']}/{g['jobs']} "
            f"| {_pct(g['best_val_miou_mean'], g['best_val_miou_std'])} "
            f"| {_pct(g['best_val_lr_miou_mean'], g['best_val_lr_miou_std'])} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def plot(groups: list[dict[str, Any]], path: Path) -> Path | None:
    """Bar chart of the means with +/- std error bars (both metrics); None when nothing finished."""
    shown = [g for g in groups if g["n"] > 0]
    if not shown:
        return None
    import matplotlib  # heavy: only when a summary is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(shown)), 3.6))
    width = 0.38
    for offset, metric, name in ((-0.2, METRICS[0], "val mIoU"), (0.2, METRICS[1], "left/right")):
        means = [100 * (g[f"{metric}_mean"] or 0.0) for g in shown]
        stds = [100 * (g[f"{metric}_std"] or 0.0) for g in shown]
        xs = [i + offset for i in range(len(shown))]
        ax.bar(xs, means, width, yerr=stds, capsize=4, label=name)
    ax.set_xticks(range(len(shown)))
    ax.set_xticklabels([f"{g['configuration']}\n(n={g['n']})" for g in shown], fontsize=8)
    ax.set_ylabel("IoU (%), mean ± std over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
