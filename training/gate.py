"""The gate: promote a candidate only on an improvement that is unlikely to be noise.

Candidate, serving and base model are evaluated with the serving engine on the same clips
(``model.asr.evaluation``). Each set gets a paired comparison over clusters (a speaker
saying a sentence), clip-weighted, users capped, corrected for the selection of held-out
clips on errors, with an exact sign-flip test (``training.gate_stats``).

Sets and their roles:

* ``heldout`` (primary): held-out corrections whose sentences training never saw;
* ``general`` (guard, or primary while ``heldout`` cannot be judged): a set of other
  speech nobody can write to, against forgetting;
* ``recent`` (guard, on by default): recent audio nobody corrected, with the transcript
  the users were given as reference. Silence is weak approval, so it only catches a
  candidate that changes much of what users accepted (forgetting, loops), with a wider
  tolerance.

Promotion needs all of:

* on the primary set, at least ``min_eval_sentences`` clusters (and, for the held-out
  corrections, ``min_eval_users`` users); a one-sided sign-flip p-value under
  ``(1 - confidence) / 2`` for "the candidate gains at least ``min_wer_improvement``"
  against the serving model; and a gain for a majority of users;
* on every guard, and on the primary set against the *base* model, non-inferiority: the
  upper end of the change's interval (at ``guard_confidence``) within the set's
  tolerance against the base model, so that losses cannot add up version after version;
  against the serving model the estimate within it (``serving_guard_confidence``), so a
  version may give back part of an earlier version's gain on other speech, never more
  than the tolerance at once and never below the base model's bound (where the serving
  model *is* the base model, or on ``recent``, the serving comparison takes the bound);
* no set where the candidate loops (insertion rate above ``max_insertion_rate`` and above
  the serving model's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from model.asr.normalize import normalize_text
from training.gate_policy import (
    DEFAULT_POLICY,
    GENERAL_SET,
    HELDOUT_SET,
    RECENT_SET,
    SET_ORDER,
    GatePolicy,
)
from training.gate_records import (
    BASE,
    SERVING,
    GateDecision,
    Interval,
    Role,
    SetCheck,
    pct,
    signed,
)
from training.gate_stats import ClusterData, PairedClip, clusters, interval, p_value_below

if TYPE_CHECKING:
    from model.asr.evaluation import Evaluation


@dataclass(frozen=True)
class ClipOrigin:
    """Where a held-out clip came from: its speaker, and whether a model's error made it
    a sample (``storage.labels.Label``)."""

    speaker: str
    selected: bool
    # Its sender confirmed the transcript as right (``storage.confirmations``).
    confirmed: bool = False


# Sets scored against what users were sent, not against a true text: the base model, whose
# transcripts those often were, reads 0% there by construction, so "no worse than the base
# model" would grow with every real change a version makes (the 5-round demo refused a
# candidate 14 points better on unseen sentences for it). Only the serving model is
# compared there: a collapse alarm, not a cumulative one.
UNLABELLED_SETS = frozenset({RECENT_SET})


# --------------------------------------------------------------------------- pairing


def paired_clips(
    current: Evaluation,
    candidate: Evaluation,
    origins: Mapping[Path, ClipOrigin] | None = None,
) -> list[PairedClip]:
    """Clips scored by both models (one may have skipped audio purged in between), with
    their speaker, sentence and per-clip WERs."""
    theirs = {clip.audio_path: clip for clip in current.clips}
    pairs = []
    for clip in candidate.clips:
        cur = theirs.get(clip.audio_path)
        if cur is None or not cur.reference_words:
            continue
        origin = (origins or {}).get(Path(clip.audio_path))
        pairs.append(
            PairedClip(
                speaker=origin.speaker if origin else "",
                sentence=normalize_text(cur.reference),
                baseline_wer=cur.wer,
                candidate_wer=clip.wer,
                selected=origin.selected if origin else False,
                confirmed=origin.confirmed if origin else False,
            )
        )
    return pairs


# --------------------------------------------------------------------------- decision


@dataclass(frozen=True)
class _Judged:
    name: str
    baseline: str
    current: Evaluation
    candidate: Evaluation
    clips: list[PairedClip]
    data: ClusterData


def decide(
    current: Mapping[str, Evaluation],
    candidate: Mapping[str, Evaluation],
    policy: GatePolicy = DEFAULT_POLICY,
    *,
    base: Mapping[str, Evaluation] | None = None,
    origins: Mapping[Path, ClipOrigin] | None = None,
    uncorrected_share: float = 0.0,
) -> GateDecision:
    """Pure decision from the models' evaluations on the same sets.

    ``base``: the base model's evaluations, when it is not the serving model.
    ``origins``: speaker and selection of held-out clips, by audio path (the other sets'
    clips have no users and were selected by nobody).
    ``uncorrected_share``: the share of served transcripts nobody corrected (the
    selection correction, ``training.gate_stats``).
    """
    names = [n for n in SET_ORDER if n in current and n in candidate]
    names += sorted(n for n in candidate if n in current and n not in SET_ORDER)
    baselines = [(SERVING, current)] + ([(BASE, base)] if base else [])
    judged: list[_Judged] = []
    for name in names:
        for label, evaluations in baselines:
            if name not in evaluations or (label == BASE and name in UNLABELLED_SETS):
                continue
            held_out = origins if name == HELDOUT_SET else None
            clips = paired_clips(evaluations[name], candidate[name], held_out)
            if not clips:
                continue
            data = clusters(
                clips,
                uncorrected_share=uncorrected_share,
                max_user_share=policy.max_user_share,
                min_confirmed_clusters=policy.min_confirmed_clusters,
            )
            judged.append(_Judged(name, label, evaluations[name], candidate[name], clips, data))
    primary = next(
        (
            j.name
            for want in (HELDOUT_SET, GENERAL_SET)
            for j in judged
            if j.name == want and j.baseline == SERVING and _judgeable(j, policy)
        ),
        None,
    )
    if primary is None:
        note = (
            f"no evaluation set has the {policy.min_eval_sentences} speaker-sentence "
            f"clusters (and, for corrections, {policy.min_eval_users} users) needed to "
            "judge; the candidate is kept out"
        )
        return GateDecision(False, None, (), policy.confidence, note)
    versus_base = {j.name for j in judged if j.baseline == BASE}
    checks = [_check(j, primary, policy, j.name in versus_base) for j in judged]
    promote = all(check.passed for check in checks)
    return GateDecision(promote, primary, tuple(checks), policy.confidence)


def _judgeable(judged: _Judged, policy: GatePolicy) -> bool:
    data = judged.data
    if data.size < policy.min_eval_sentences:
        return False
    return judged.name != HELDOUT_SET or data.users >= policy.min_eval_users


def _gain_test(judged: _Judged, policy: GatePolicy, users_better: int) -> tuple[float, bool, str]:
    """The primary set's test against the serving model: p-value, passed, and why."""
    data = judged.data
    p_value = p_value_below(
        data, -policy.min_wer_improvement, resamples=policy.bootstrap_resamples,
        seed=policy.seed,
    )  # fmt: skip
    alpha = (1.0 - policy.confidence) / 2
    if any(clip.selected for clip in judged.clips):  # skewed changes (gate_stats)
        alpha *= policy.selected_alpha_factor
    judged_users = data.users_judged()
    majority = judged.name != HELDOUT_SET or 2 * users_better > judged_users
    passed = p_value < alpha and majority
    rule = (
        f"gain of at least {pct(policy.min_wer_improvement)}: one-sided sign-flip "
        f"p = {p_value:.4f} (needs < {alpha:.3f}); better for {users_better} of "
        f"{judged_users} users"
    )
    if data.stratified:
        rule += f"; stratified by {data.confirmed} confirmed clusters"
    return p_value, passed, rule if passed else f"no {rule}"


def _check(judged: _Judged, primary: str, policy: GatePolicy, versus_base: bool) -> SetCheck:
    """``versus_base``: the set is compared with the base model too."""
    data = judged.data
    gain_test = judged.name == primary and judged.baseline == SERVING
    confidence = policy.confidence if gain_test else policy.guard_confidence
    delta, low, high = interval(
        data, confidence=confidence, resamples=policy.bootstrap_resamples, seed=policy.seed
    )
    users_better = data.users_better()
    p_value = None
    if gain_test:
        p_value, passed, rule = _gain_test(judged, policy, users_better)
    else:
        passed, rule = _guard(judged, policy, versus_base, (delta, high, confidence))
    cur, cand = judged.current.rates, judged.candidate.rates
    loops = cand.insertion_rate > max(policy.max_insertion_rate, cur.insertion_rate)
    if loops:  # an alarm on loops the candidate brings, not on a set where both insert
        passed = False
        rule += f"; insertion rate {pct(cand.insertion_rate)} (generation loops?)"
    return SetCheck(
        eval_set=judged.name,
        role=Role.PRIMARY if judged.name == primary else Role.GUARD,
        clips=len(judged.clips),
        sentences=len({clip.sentence for clip in judged.clips}),
        current_wer=cur.wer,
        candidate_wer=cand.wer,
        current_cer=cur.cer,
        candidate_cer=cand.cer,
        current_insertion_rate=cur.insertion_rate,
        candidate_insertion_rate=cand.insertion_rate,
        interval=Interval(delta, low, high),
        passed=passed,
        rule=rule,
        baseline=judged.baseline,
        clusters=data.size,
        users=data.users,
        users_better=users_better,
        p_value=p_value,
        interval_confidence=confidence,
        confirmed_clusters=data.confirmed,
        stratified=data.stratified,
    )


def _guard(
    judged: _Judged, policy: GatePolicy, versus_base: bool, change: tuple[float, float, float]
) -> tuple[bool, str]:
    """Non-inferiority on a guard: passed, and why. ``change``: the estimate and the upper
    bound at ``confidence``."""
    delta, high, confidence = change
    tolerance = policy.tolerance(judged.name)
    bound, said = high, f"upper bound {signed(high)} at {100 * confidence:.0f}%"
    decide_at = policy.serving_guard_confidence
    if judged.baseline == SERVING and versus_base and decide_at != confidence:
        # The base model's bound limits the sum; against the serving model a looser one.
        if decide_at > 0:
            bound = interval(judged.data, confidence=decide_at,
                             resamples=policy.bootstrap_resamples, seed=policy.seed)[2]  # fmt: skip
            said = f"upper bound {signed(bound)} at {100 * decide_at:.0f}%"
        else:
            bound, said = delta, f"the estimate {signed(delta)}"
        said += " against the serving model; the base model's bound limits the sum"
    passed = bound <= tolerance
    verdict = "within" if passed else "not shown within"
    return passed, f"{verdict} the {pct(tolerance)} tolerance ({said})"
