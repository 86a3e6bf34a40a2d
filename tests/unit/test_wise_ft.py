"""WiSE-FT's alpha is chosen on the run's validation slice: without one it is skipped, and
the run says so (the default has no slice since 2026-12-07)."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("torch")

from training import finetune
from training.arguments import FinetuneArguments


def test_wise_ft_without_a_validation_slice_is_skipped_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    args = FinetuneArguments(wise_alphas="0.5,1")
    with caplog.at_level(logging.WARNING, logger="training.finetune"):
        assert finetune._wise(args, trainer=None, start_weights=None, validate=False) is None
    assert "WiSE-FT skipped" in caplog.text


def test_wise_ft_off_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="training.finetune"):
        assert (
            finetune._wise(FinetuneArguments(), trainer=None, start_weights=None, validate=True)
            is None
        )
    assert caplog.text == ""
