"""PNG charts for admins (matplotlib, imported only when a chart is drawn)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

PLOT_DPI = 120
# Version names under the x axis at most (more merge into a black bar: 1,000 versions).
MAX_VERSION_LABELS = 16
# What each evaluation set measures, in the legend (the same words as /wer's table).
SET_LABELS = {
    "heldout": "heldout: frasi mai viste",
    "general": "general: insieme generale",
    "recent": "recent: audio non corretti (accordo)",
}


def latest_wer_by_version(points: Sequence[Any]) -> tuple[list[str], dict[str, list[float | None]]]:
    """Versions in order of first evaluation, and per eval set the latest WER of each."""
    versions: list[str] = []
    latest: dict[tuple[str, str], float] = {}
    for point in points:
        if point.model_version not in versions:
            versions.append(point.model_version)
        latest[(point.model_version, point.eval_set)] = point.wer
    sets = sorted({eval_set for _, eval_set in latest})
    series = {s: [latest.get((v, s)) for v in versions] for s in sets}
    return versions, series


def labelled_positions(count: int) -> list[int]:
    """Which of ``count`` versions get their name under the axis: evenly spaced, at most
    ``MAX_VERSION_LABELS``, the newest always."""
    step = max(1, -(-count // MAX_VERSION_LABELS))
    return sorted({*range(count - 1, -1, -step)})


def wer_plot_png(points: Sequence[Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display; safe in worker threads
    from matplotlib.figure import Figure

    versions, series = latest_wer_by_version(points)
    figure = Figure(figsize=(7, 4), dpi=PLOT_DPI)
    axes = figure.subplots()
    for eval_set, values in series.items():
        xs = [i for i, value in enumerate(values) if value is not None]
        ys = [values[i] * 100 for i in xs]
        axes.plot(xs, ys, marker="o", label=SET_LABELS.get(eval_set, eval_set))
    ticks = labelled_positions(len(versions))
    axes.set_xticks(ticks, [versions[i] for i in ticks], rotation=20, ha="right", fontsize=8)
    axes.set_ylabel("WER (%)")
    axes.set_ylim(bottom=0)
    axes.set_title("WER per versione del modello")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
