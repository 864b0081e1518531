"""PNG plots of evaluation results (matplotlib, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
    """Grouped bars of `metric` per system per dataset, published values as black lines; returns the path.

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
    styles: tuple[Any, ...] = ("--", ":", "-.", "-")
    top = 0.0
    for j, (label, values) in enumerate((published or {}).items()):
        first = True
        for d, ds in enumerate(datasets):
            if ds not in values:
                continue
            top = max(top, values[ds])
            ax.hlines(
                values[ds],
                d - 0.45,
                d + 0.45,
                colors="black",
                linestyles=styles[j % len(styles)],
                linewidth=1.5,
                label=label if first else "_nolegend_",
                zorder=3,
            )
            first = False
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel(metric)
    best = max([top] + [m.get(metric, 0.0) for by_sys in reports.values() for m in by_sys.values()])
    ax.set_ylim(0, min(1.0, best + 0.15))
    ax.set_title(title or f"{metric} per system per dataset", fontsize=10)
    ax.legend(fontsize=7, ncols=2, loc="upper right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
