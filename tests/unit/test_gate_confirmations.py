"""The gate with confirmed clips (issue 19, the "✅ Giusto" button), simulated clip by clip
as in ``test_gate_simulation.py`` and judged by the real ``training.gate.decide``.

Users correct transcripts the serving model got wrong and confirm some it got right. The
held-out set then holds both strata of what was served, and the gate post-stratifies it
(``training.gate_stats``): a no-better candidate is promoted in at most 2.5% of trials,
also when its errors fall on other clips than the serving model's (the worst case for
selection on errors) and when users correct only some errors; a truly better candidate
is still promoted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.support.gate_simulation import WORDS, Clip, simulated_evaluation
from training.gate import ClipOrigin, decide
from training.gate_policy import HELDOUT_SET, GatePolicy
from training.gate_records import GateDecision
from training.gate_stats import PairedClip, clusters

NOMINAL = 0.025
TRIALS = 300
USERS = [f"u{i}" for i in range(6)]


def _decide(clips: list[Clip], *, uncorrected_share: float, policy: GatePolicy) -> GateDecision:
    origins = {
        Path(f"/c/{i}"): ClipOrigin(c.speaker, selected=not c.confirmed, confirmed=c.confirmed)
        for i, c in enumerate(clips)
    }
    return decide(
        {HELDOUT_SET: simulated_evaluation(clips, candidate=False)},
        {HELDOUT_SET: simulated_evaluation(clips, candidate=True)},
        policy,
        origins=origins,
        uncorrected_share=uncorrected_share,
    )


@dataclass(frozen=True)
class Served:
    """One installation's served transcripts and what its users said about them."""

    heldout: list[Clip]
    uncorrected_share: float


def _serve(
    rng: np.random.Generator,
    *,
    served: int,
    shared: bool,
    correct_rate: float,
    confirm_rate: float,
    corrected_cap: int,
    confirmed_cap: int,
    gain: float = 0.0,
    difficulty: tuple[float, float] = (0.3, 3.0),
) -> Served:
    """``served`` transcripts by both models (same expected WER unless ``gain``: the share
    of the serving model's errors the candidate removes); users correct a wrong one with
    probability ``correct_rate`` and confirm a right one with ``confirm_rate``; the
    held-out set keeps up to the caps of each (one clip per sentence). ``difficulty``: the
    beta distribution of a clip's word error probability (by default mean WER 9%, 62% of
    transcripts right; (1, 3): 25%, 23% right)."""
    hardness = rng.beta(*difficulty, size=(served, 1 if shared else 2))
    errors = rng.binomial(WORDS, np.broadcast_to(hardness, (served, 2)))
    if gain:
        errors[:, 1] = rng.binomial(errors[:, 0], 1.0 - gain)
    who = rng.integers(0, len(USERS), size=served)
    wrong = errors[:, 0] > 0
    corrected = wrong & (rng.random(served) < correct_rate)
    confirmed = ~wrong & (rng.random(served) < confirm_rate)
    keep = np.flatnonzero(corrected)[:corrected_cap].tolist()
    keep += np.flatnonzero(confirmed)[:confirmed_cap].tolist()
    heldout = [
        Clip(USERS[who[i]], i, int(errors[i, 0]), int(errors[i, 1]), bool(confirmed[i]))
        for i in keep
    ]
    return Served(heldout, 1.0 - corrected.sum() / served)


@pytest.mark.parametrize(
    ("shared", "corrected", "confirmed", "difficulty"),
    [
        # Errors on other clips than the serving model's: the worst case for selection.
        (False, 10, 10, (0.3, 3.0)),  # small, at the stratification threshold
        (False, 15, 10, (0.3, 3.0)),
        (False, 40, 30, (0.3, 3.0)),
        (False, 100, 60, (0.3, 3.0)),
        (False, 30, 15, (1.0, 3.0)),  # a worse serving model: 23% of transcripts right
        (True, 40, 30, (0.3, 3.0)),  # errors on the same hard clips (realistic)
    ],
)
def test_null_candidates_with_confirmations(
    shared: bool,
    corrected: int,
    confirmed: int,
    difficulty: tuple[float, float],
) -> None:
    rng = np.random.default_rng(190 + corrected + confirmed + int(shared))
    policy = GatePolicy(min_wer_improvement=0.0)
    promoted = stratified = 0
    for _ in range(TRIALS):
        served = _serve(
            rng, served=max(corrected * 5, 150), shared=shared, correct_rate=1.0,
            confirm_rate=0.5, corrected_cap=corrected, confirmed_cap=confirmed,
            difficulty=difficulty,
        )  # fmt: skip
        decision = _decide(
            served.heldout, uncorrected_share=served.uncorrected_share, policy=policy
        )
        promoted += decision.promote
        check = decision.check(HELDOUT_SET)
        stratified += bool(check and check.stratified)
    # The confirmations were used as a stratum (not where a trial had too few of them).
    assert stratified >= 0.7 * TRIALS, (stratified, promoted)
    assert promoted / TRIALS <= NOMINAL, promoted / TRIALS


def test_a_better_candidate_is_promoted_with_confirmations() -> None:
    """Power: a candidate that removes 60% of the serving model's errors, 12 corrected and
    12 confirmed sentences from 6 users, is promoted in most trials, through the
    stratified comparison. (The correction alone, assuming independent errors, hides
    this gain where most transcripts are right: see the last assertion.)"""
    rng = np.random.default_rng(23)
    promoted = corrected_only = stratified = 0
    for _ in range(100):
        served = _serve(
            rng, served=150, shared=True, correct_rate=1.0, confirm_rate=0.5,
            corrected_cap=12, confirmed_cap=12, gain=0.6,
        )  # fmt: skip
        share = served.uncorrected_share
        decision = _decide(served.heldout, uncorrected_share=share, policy=GatePolicy())
        check = decision.check(HELDOUT_SET)
        assert check is not None and check.confirmed_clusters == 12
        stratified += check.stratified
        promoted += decision.promote
        corrections = [c for c in served.heldout if not c.confirmed]
        corrected_only += _decide(corrections, uncorrected_share=share, policy=GatePolicy()).promote
    assert stratified >= 90, stratified
    assert promoted >= 80, promoted
    assert corrected_only <= 10, corrected_only


def test_a_candidate_that_breaks_confirmed_transcripts_is_refused() -> None:
    """The confirmed stratum carries its weight: a candidate that fixes every corrected
    clip but gets a third of the words wrong on what users confirmed (served transcripts
    are mostly right) is worse over everything served, and is refused."""
    rng = np.random.default_rng(24)
    promoted = 0
    for _ in range(50):
        served = _serve(
            rng, served=300, shared=True, correct_rate=1.0, confirm_rate=0.5,
            corrected_cap=20, confirmed_cap=20,
        )  # fmt: skip
        broken = [
            Clip(c.speaker, c.sentence, c.serving_errors,
                 3 if c.confirmed else 0, c.confirmed)
            for c in served.heldout
        ]  # fmt: skip
        share = served.uncorrected_share
        decision = _decide(broken, uncorrected_share=share, policy=GatePolicy())
        check = decision.check(HELDOUT_SET)
        assert check is not None and check.stratified
        promoted += decision.promote
    assert promoted == 0, promoted


def test_the_strata_weigh_as_wrong_and_right_transcripts_among_those_served() -> None:
    """The arithmetic: corrected clusters together weigh 1 - p0, confirmed ones p0, no
    (1 - p0) factor on the baseline; a user whose clips the baseline got all right is
    not counted for the majority. With too few confirmations: the correction."""
    clips = [
        PairedClip("a", "uno", baseline_wer=0.5, candidate_wer=0.1, selected=True),
        PairedClip("b", "due", baseline_wer=0.4, candidate_wer=0.2, selected=True),
        PairedClip("a", "tre", baseline_wer=0.0, candidate_wer=0.0, confirmed=True),
        PairedClip("c", "quattro", baseline_wer=0.0, candidate_wer=0.1, confirmed=True),
        PairedClip("c", "cinque", baseline_wer=0.0, candidate_wer=0.0, confirmed=True),
    ]
    data = clusters(clips, uncorrected_share=0.6, max_user_share=1.0, min_confirmed_clusters=3)
    assert data.stratified and data.confirmed == 3
    weights = {clips[i].sentence: w for i, w in zip(_order(clips), data.weights, strict=True)}
    assert weights["uno"] == pytest.approx(0.2) and weights["due"] == pytest.approx(0.2)
    assert weights["tre"] == pytest.approx(0.2) and weights["quattro"] == pytest.approx(0.2)
    assert data.mean == pytest.approx(0.2 * (-0.4 - 0.2 + 0.0 + 0.1 + 0.0))
    assert data.users == 3 and data.users_judged() == 2  # "c" had nothing to gain

    few = clusters(clips, uncorrected_share=0.6, max_user_share=1.0, min_confirmed_clusters=4)
    assert not few.stratified
    assert few.mean == pytest.approx((0.1 - 0.2 + 0.2 - 0.16 + 0.0 + 0.1 + 0.0) / 5)
    assert few.users_judged() == few.users == 3


def _order(clips: list[PairedClip]) -> list[int]:
    """Clip indices in the order ``clusters`` sorts their (one-clip) clusters."""

    def stratum(clip: PairedClip) -> str:
        return "confirmed" if clip.confirmed else "corrected" if clip.selected else "other"

    return sorted(range(len(clips)), key=lambda i: (stratum(clips[i]), clips[i].speaker,
                                                    clips[i].sentence))  # fmt: skip
