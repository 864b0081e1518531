"""PNG plots of evaluation results (matplotlib, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["plot_metric"]


def plot_metric(
    reports: Mapping[str, Mapping[str, Mapping[str, float]]],
    systems: Sequence[str],
    path: str | Path,
    *,
    metric: str = "ndcg@10",
    published: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
) -> Path:
    """Grouped bars of `metric` per system per dataset, published reference values as markers; returns path.

    `reports` is `{dataset: {system: {metric: value}}}`; `published` is `{label: {dataset: value}}`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(reports)
    if not datasets or not systems:
        raise ValueError("nothing to plot: no datasets or no systems")
    out = Path(path)
    width = 0.8 / len(systems)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * len(datasets) + 2), 4.2), dpi=120)
    for i, system in enumerate(systems):
        xs = [d + (i - (len(systems) - 1) / 2) * width for d in range(len(datasets))]
        ys = [reports[ds].get(system, {}).get(metric, 0.0) for ds in datasets]
        bars = ax.bar(xs, ys, width=width, label=system)
        ax.bar_label(bars, labels=[f"{y:.2f}" for y in ys], fontsize=6, padding=1)
    markers = ["_", "x", "+", "1"]
    for j, (label, values) in enumerate((published or {}).items()):
        pts = [(d, values[ds]) for d, ds in enumerate(datasets) if ds in values]
        if pts:
            ax.scatter(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker=markers[j % len(markers)],
                s=400,
                color="black",
                linewidths=2,
                label=label,
                zorder=3,
            )
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    ax.set_title(title or f"{metric} per system per dataset", fontsize=10)
    ax.legend(fontsize=7, ncols=2, loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
