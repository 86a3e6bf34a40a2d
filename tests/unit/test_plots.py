"""/wer's chart stays readable however many versions there are."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot.plots import MAX_VERSION_LABELS, labelled_positions, wer_plot_png


@pytest.mark.parametrize("count", [1, 5, MAX_VERSION_LABELS, MAX_VERSION_LABELS + 1, 1000])
def test_at_most_a_few_version_names_the_newest_always(count: int) -> None:
    positions = labelled_positions(count)
    assert 0 < len(positions) <= MAX_VERSION_LABELS
    assert positions == sorted(set(positions)) and positions[-1] == count - 1
    if count <= MAX_VERSION_LABELS:
        assert positions == list(range(count))


def test_a_thousand_versions_still_make_a_chart() -> None:
    points = [
        SimpleNamespace(model_version=f"v{n}", eval_set="heldout", wer=0.1 + (n % 7) / 100)
        for n in range(1000)
    ]
    assert wer_plot_png(points).startswith(b"\x89PNG")
