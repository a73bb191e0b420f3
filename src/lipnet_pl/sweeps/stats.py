"""The sweep summary per configuration: jobs that differ only in their seed are one group.

Per configuration: n (finished jobs), mean and standard deviation (n-1) of the best val mIoU and
of the left/right mIoU, and whether its mean mIoU differs from the reference configuration's
(default ``model/dilations=paper``) by more than the noise: by more than TWO STANDARD ERRORS of
the difference, ``|m1 - m0| > 2 * sqrt(s1^2/n1 + s0^2/n0)`` (about a 95 % band; it needs two
seeds on both sides). Next to it what a configuration costs: its GFLOPs and CPU latency at
batch 1 (means over its jobs) and whether it is on the **Pareto front** of mean mIoU against
latency (no other configuration is at least as fast and at least as accurate, and better in one).
``sweep_summary.png`` draws the means with +/- one std error bars, and mIoU against latency with
the front marked.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from lipnet_pl.hydra_runtime import SEED_KEYS

METRICS = ("best_val_miou", "best_val_lr_miou")
COSTS = ("gflops", "cpu_latency_ms")


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
        for cost in COSTS:
            group[f"{cost}_mean"] = _mean_std(
                [float(r[cost]) for r in done if r.get(cost) is not None]
            )[0]
        group["is_reference"] = reference is not None and reference in label.split(" ")
        out.append(group)
    ref = next((g for g in out if g["is_reference"]), None)
    for group in out:
        group["differs_from_reference"] = (
            None if ref is None or group is ref or group["n"] == 0 else differs(group, ref)
        )
    mark_pareto_front(out)
    return out


def _point(group: dict[str, Any]) -> tuple[float, float] | None:
    """(mean latency, mean mIoU), None when either is missing."""
    latency, miou = group.get("cpu_latency_ms_mean"), group.get("best_val_miou_mean")
    return None if latency is None or miou is None else (latency, miou)


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """For (latency, accuracy) points: True where no other point is at least as fast and at least
    as accurate and strictly better in one of the two (equal points are all on the front)."""
    return [
        not any(lat <= lat0 and acc >= acc0 and (lat < lat0 or acc > acc0) for lat, acc in points)
        for lat0, acc0 in points
    ]


def mark_pareto_front(groups: list[dict[str, Any]]) -> None:
    """``group["pareto"]``: on the mIoU-vs-latency front (None without both numbers)."""
    measured = [g for g in groups if _point(g) is not None]
    for group in groups:
        group["pareto"] = None
    for group, on_front in zip(measured, pareto_front([_point(g) for g in measured]), strict=True):
        group["pareto"] = on_front


def _pct(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(groups: list[dict[str, Any]]) -> str:
    """The per-configuration table."""
    lines = [
        "| configuration | n | best val mIoU (%) mean ± std | left/right mIoU (%) mean ± std "
        "| differs from reference (> 2 SE) | GFLOPs | CPU ms (b1) | Pareto front |",
        "|---|---|---|---|---|---|---|---|",
    ]
    word = {True: "yes", False: "no", None: "-"}
    for g in groups:
        verdict = word[g["differs_from_reference"]]
        verdict = "(reference)" if g["is_reference"] else verdict
        lines.append(
            f"| {g['configuration']} | {g['n']}/{g['jobs']} "
            f"| {_pct(g['best_val_miou_mean'], g['best_val_miou_std'])} "
            f"| {_pct(g['best_val_lr_miou_mean'], g['best_val_lr_miou_std'])} | {verdict} "
            f"| {_num(g.get('gflops_mean'))} | {_num(g.get('cpu_latency_ms_mean'))} "
            f"| {word[g.get('pareto')]} |"
        )
    return "\n".join(lines) + "\n"


def plot(groups: list[dict[str, Any]], path: Path) -> Path | None:
    """Left: the means with +/- std error bars (both metrics). Right: mean mIoU against mean CPU
    latency, the Pareto front joined and filled, the others hollow. None when nothing finished."""
    shown = [g for g in groups if g["n"] > 0]
    if not shown:
        return None
    import matplotlib  # heavy: only when a summary is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, tradeoff) = plt.subplots(
        1, 2, figsize=(max(4.0, 1.6 * len(shown)) + 5.0, 3.8), width_ratios=[len(shown) + 1, 4]
    )
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
    _tradeoff_panel(tradeoff, shown)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _tradeoff_panel(ax, groups: list[dict[str, Any]]) -> None:
    """mIoU (mean ± std) against CPU latency per configuration, the Pareto front marked."""
    measured = [g for g in groups if _point(g) is not None]
    ax.set_title("what the accuracy costs", fontsize=9)
    ax.set_xlabel("CPU latency at batch 1 (ms)")
    ax.set_ylabel("val mIoU (%)")
    if not measured:
        ax.text(
            0.5, 0.5, "no CPU latency measured", ha="center", va="center", transform=ax.transAxes
        )
        return
    for g in measured:
        latency, miou = _point(g)
        std = 100 * (g["best_val_miou_std"] or 0.0)
        front = bool(g["pareto"])
        ax.errorbar(
            latency,
            100 * miou,
            yerr=std,
            fmt="o",
            color="C3" if front else "C7",
            mfc="C3" if front else "none",
            capsize=3,
        )
        ax.annotate(
            g["configuration"],
            (latency, 100 * miou),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
    front = sorted(_point(g) for g in measured if g["pareto"])
    ax.plot(
        [p[0] for p in front],
        [100 * p[1] for p in front],
        "-",
        color="C3",
        alpha=0.6,
        label="Pareto front",
    )
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
