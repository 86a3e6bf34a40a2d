"""The gate's statistics and decisions, on hand-made per-clip scores (no model needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.training_support import made_up_evaluation
from training.arguments import FinetuneResult
from training.gate import (
    GENERAL_SET,
    HELDOUT_SET,
    RECENT_SET,
    GateDecision,
    GatePolicy,
    PairedErrors,
    Role,
    Verdict,
    decide,
    paired_bootstrap,
)
from training.report import DataFacts, RunReport

_evaluation = made_up_evaluation


def test_bootstrap_resamples_sentences_and_brackets_the_change() -> None:
    current, candidate = _evaluation([6] * 10), _evaluation([2] * 10)
    paired = PairedErrors.from_evaluations(current, candidate)
    assert paired.clips == 20 and paired.sentences == 10
    interval = paired_bootstrap(paired, resamples=500, confidence=0.95, seed=0)
    assert interval.delta == pytest.approx(-4 / 12)
    assert interval.low <= interval.delta <= interval.high < 0
    assert interval.verdict is Verdict.BETTER


def test_a_clear_gain_is_promoted() -> None:
    decision = decide({HELDOUT_SET: _evaluation([6] * 10)}, {HELDOUT_SET: _evaluation([1] * 10)})
    assert decision.promote and decision.primary_set == HELDOUT_SET
    (check,) = decision.checks
    assert check.role is Role.PRIMARY and check.passed and check.verdict is Verdict.BETTER
    assert check.clips == 20 and check.sentences == 10


def test_a_gain_that_could_be_noise_is_refused() -> None:
    # Better on two sentences, worse on one: the point estimate improves, the interval
    # still includes no change.
    current = _evaluation([3, 3, 0, 0, 0, 1])
    candidate = _evaluation([0, 0, 5, 0, 0, 1])
    decision = decide({HELDOUT_SET: current}, {HELDOUT_SET: candidate})
    check = decision.check(HELDOUT_SET)
    assert check is not None and check.interval.delta < 0
    assert check.verdict is Verdict.INCONCLUSIVE and not check.passed
    assert not decision.promote and "confidence" in decision.summary


def test_forgetting_on_a_guard_set_blocks_promotion() -> None:
    current = {HELDOUT_SET: _evaluation([6] * 10), GENERAL_SET: _evaluation([0] * 8)}
    candidate = {HELDOUT_SET: _evaluation([1] * 10), GENERAL_SET: _evaluation([1] * 8)}
    decision = decide(current, candidate)
    general = decision.check(GENERAL_SET)
    assert general is not None and general.role is Role.GUARD and not general.passed
    assert "tolerance" in general.rule and not decision.promote
    # The recent set has a wider tolerance: a one-word change in twelve passes there.
    current[RECENT_SET], candidate[RECENT_SET] = (
        current.pop(GENERAL_SET),
        candidate.pop(GENERAL_SET),
    )
    policy = GatePolicy(recent_tolerance=0.1)
    assert decide(current, candidate, policy).promote


def test_the_general_set_judges_while_the_heldout_has_too_few_sentences() -> None:
    # Two sentences read by three voices, both much better: six clips, but a bootstrap over
    # two sentences has three distinct draws and would "prove" the gain at 95%.
    current = {HELDOUT_SET: _evaluation([6, 5], voices=3), GENERAL_SET: _evaluation([5] * 8)}
    candidate = {HELDOUT_SET: _evaluation([2, 2], voices=3), GENERAL_SET: _evaluation([5] * 8)}
    decision = decide(current, candidate, GatePolicy(min_eval_sentences=5))
    assert decision.primary_set == GENERAL_SET and not decision.promote
    heldout = decision.check(HELDOUT_SET)
    assert heldout is not None and heldout.role is Role.GUARD and heldout.sentences == 2
    candidate[GENERAL_SET] = _evaluation([1] * 8)
    assert decide(current, candidate, GatePolicy(min_eval_sentences=5)).promote
    nothing = decide({HELDOUT_SET: _evaluation([3] * 6)}, {HELDOUT_SET: _evaluation([0] * 6)},
                     GatePolicy(min_eval_sentences=7))  # fmt: skip
    assert not nothing.promote and not nothing.checks
    assert "7 different sentences" in " ".join(nothing.reasons)


def test_report_survives_the_database_round_trip() -> None:
    decision = decide({HELDOUT_SET: _evaluation([6] * 10)}, {HELDOUT_SET: _evaluation([1] * 10)})
    assert GateDecision.from_dict(decision.to_dict()) == decision
    report = RunReport(
        run_id=3, candidate="v3", parent="v2", promoted=True, gate=decision,
        finetune=FinetuneResult(Path("/x/final"), "cpu", 30, 40, 0.5, 100.0, 3.0, 2.6, 96,
                                None, True, best_step=20, best_validation_loss=0.4),
        data=DataFacts(samples_used=96, train_clips=96, heldout_clips=20),
        base_model="packaged:whisper-base", created_at="2026-01-01T00:00:00+00:00",
    )  # fmt: skip
    again = RunReport.from_metrics({"phase": "done", "report": report.to_dict()})
    assert again == report and again.reasons == decision.reasons
    assert RunReport.from_metrics({"phase": "training"}) is None


def test_model_card_shows_each_sets_verdict_and_interval() -> None:
    import datetime as dt

    from training.promote import model_card

    current = {HELDOUT_SET: _evaluation([6] * 10), GENERAL_SET: _evaluation([0] * 4)}
    candidate = {HELDOUT_SET: _evaluation([1] * 10), GENERAL_SET: _evaluation([0] * 4)}
    decision = decide(current, candidate)
    card = model_card(
        name="v1", parent="base", base_model="packaged:whisper-base", decision=decision,
        training={"steps": 2}, created_at=dt.datetime(2026, 1, 1),
    )  # fmt: skip
    assert card.startswith("---") and "language: it" in card
    assert "| heldout | primary | 20 (10 sentences) | 50.0% | 8.3% | -41.7 [" in card
    assert "| better |" in card and "| general | guard | 8 (4 sentences) |" in card
    assert "Gate: promoted." in card
