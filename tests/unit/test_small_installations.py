"""Small installations learn (issue 19): from the first ~15 corrected sentences the held-out
side holds enough sentences for the gate to judge, whatever the installation's salt, and
the one split (``storage.samples.assign_splits``) never moves a trained sentence to the
held-out side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.asr.evaluation import ClipScore, Evaluation
from model.asr.normalize import ErrorRates
from storage.audio_store import AudioStore
from storage.models import SECRET_SPLIT_SALT, InstallationSecret
from storage.samples import (
    EVAL,
    TRAIN,
    add_labelled_sample,
    assign_splits,
    list_samples,
    sample_stats,
    uncorrected_share,
)
from storage.unit_of_work import Database
from tests.support.labelling import SPLIT
from training.config import split_policy
from training.gate import ClipOrigin, decide
from training.gate_policy import HELDOUT_SET

SALTS = tuple(bytes([n]) * 32 for n in (1, 2, 3, 4, 5))
SPEAKERS = ("anna", "bruno", "carla")
WORDS = 8


def _sentences(count: int) -> list[str]:
    return [f"questa è la frase numero {n} del diario" for n in range(count)]


@pytest.mark.parametrize("salt", SALTS)
def test_fifteen_sentences_hold_out_enough_to_judge(salt: bytes) -> None:
    sides = assign_splits(_sentences(15), salt=salt, policy=SPLIT)
    held = [group for group, side in sides.items() if side == EVAL]
    assert 8 <= len(held) <= 9  # the floor, plus whatever the 10% fraction adds
    # Up to the floor every sentence is held out: training starts past it.
    few = assign_splits(_sentences(5), salt=salt, policy=SPLIT)
    assert set(few.values()) == {EVAL}
    # Without the floor, as before, the same salt held out 0-4 of them.
    bare = assign_splits(_sentences(15), salt=salt, policy=split_policy(0.1, 0))
    assert sum(side == EVAL for side in bare.values()) < 8


@pytest.mark.parametrize("salt", SALTS[:3])
def test_growing_never_moves_a_trained_sentence_to_held_out(salt: bytes) -> None:
    trained: set[str] = set()
    for count in range(1, 120):
        sides = assign_splits(_sentences(count), salt=salt, policy=SPLIT)
        assert not trained & {group for group, side in sides.items() if side == EVAL}, count
        trained |= {group for group, side in sides.items() if side == TRAIN}
    # At 119 sentences the fraction alone is above the floor: about 10% held out.
    assert 8 <= sum(side == EVAL for side in sides.values()) <= 25


def _import_round(database: Database, store: AudioStore, salt: bytes) -> None:
    """15 sentences read by three named speakers, imported as ``samples import`` does."""
    with database.unit_of_work() as uow:
        uow.session.get(InstallationSecret, SECRET_SPLIT_SALT).value = salt.hex()
        for n, sentence in enumerate(_sentences(15)):
            for v, speaker in enumerate(SPEAKERS):
                samples = np.random.default_rng(100 * n + v).uniform(-0.5, 0.5, 1600)
                ref = store.put(samples.astype(np.float32))
                add_labelled_sample(uow.session, audio=ref, text=sentence, speaker=speaker)
        uow.commit()


def _evaluation(samples, store: AudioStore, errors: dict[str, int]) -> Evaluation:
    clips = tuple(
        ClipScore(store.path(s.audio_sha256), s.text, "", 2.0, WORDS, errors[s.speaker], 0, 0, 0)
        for s in samples
    )
    wrong = sum(c.word_errors for c in clips)
    rates = ErrorRates(wrong / (WORDS * len(clips)), 0.0, len(clips), WORDS * len(clips),
                       wrong, 0, 0)  # fmt: skip
    return Evaluation("m", "ct2", rates, clips, 2.0, 0.0)


@pytest.mark.parametrize("salt", SALTS[:3])
def test_a_better_model_is_promoted_from_the_first_fifteen_sentences(
    database: Database, tmp_path: Path, salt: bytes
) -> None:
    store = AudioStore(tmp_path / "audio")
    _import_round(database, store, salt)
    with database.unit_of_work(read_only=True) as uow:
        heldout = list_samples(uow.session, EVAL, policy=SPLIT)
        stats = sample_stats(uow.session, policy=SPLIT)
        share = uncorrected_share(uow.session)
    assert {s.speaker for s in heldout} == {f"speaker:{name}" for name in SPEAKERS}
    assert not any(s.selected for s in heldout) and share == 0.0  # imports: no selection
    assert stats.eval == len(heldout) >= 24 and stats.train + stats.eval == 45
    origins = {store.path(s.audio_sha256): ClipOrigin(s.speaker, s.selected) for s in heldout}
    serving = {spk: 3 for spk in (s.speaker for s in heldout)}
    better = {spk: 1 for spk in serving}
    decision = decide(
        {HELDOUT_SET: _evaluation(heldout, store, serving)},
        {HELDOUT_SET: _evaluation(heldout, store, better)},
        origins=origins,
    )
    assert decision.promote and decision.primary_set == HELDOUT_SET, decision.reasons
    same = decide(
        {HELDOUT_SET: _evaluation(heldout, store, serving)},
        {HELDOUT_SET: _evaluation(heldout, store, serving)},
        origins=origins,
    )
    assert same.primary_set == HELDOUT_SET and not same.promote


def test_no_speaker_holds_more_than_its_share_of_training_words() -> None:
    from datetime import UTC, datetime

    from storage.samples import Sample, cap_user_words

    def sample(n: int, speaker: str) -> Sample:
        return Sample(f"{n:064x}", "una frase di cinque parole", 1.0, TRAIN, n, n, 1,
                      datetime(2026, 1, 1, tzinfo=UTC), f"g{n}", speaker)  # fmt: skip

    samples = [sample(n, "user:1") for n in range(40)] + [
        sample(40 + n, "user:2") for n in range(5)
    ]
    kept = cap_user_words(samples, max_share=0.8, seed=1)
    words = {s: sum(5 for k in kept if k.speaker == s) for s in ("user:1", "user:2")}
    assert words["user:2"] == 25  # the small contributor keeps everything
    assert words["user:1"] <= 4 * words["user:2"] and words["user:1"] >= 4 * 25 - 5
    assert kept == sorted(kept, key=lambda s: s.correction_id)
    assert cap_user_words(samples, max_share=1.0, seed=1) == samples
    alone = [sample(n, "user:1") for n in range(5)]
    assert cap_user_words(alone, max_share=0.5, seed=1) == alone


@pytest.mark.parametrize("salt", SALTS[:3])
def test_users_corrections_of_sixteen_sentences_can_promote(salt: bytes) -> None:
    """Users' own corrections (selected on errors): the floor's 8 held-out sentences, one
    reader each from 3 users, all better, promote; 7 could not (p = 1/128 > 2.5% / 4)."""
    sides = assign_splits(_sentences(16), salt=salt, policy=SPLIT)
    held = sorted(group for group, side in sides.items() if side == EVAL)
    assert len(held) >= 8

    def evaluations(sentences: list[str], errors: int) -> Evaluation:
        clips = tuple(
            ClipScore(Path(f"/a/{n}"), text, "", 2.0, WORDS, errors, 0, 0, 0)
            for n, text in enumerate(sentences)
        )
        rates = ErrorRates(errors / WORDS, 0.0, len(clips), WORDS * len(clips), 0, 0, 0)
        return Evaluation("m", "ct2", rates, clips, 2.0, 0.0)

    def judge(sentences: list[str]):
        origins = {
            Path(f"/a/{n}"): ClipOrigin(f"user:{n % 3}", True) for n in range(len(sentences))
        }
        return decide(
            {HELDOUT_SET: evaluations(sentences, 4)},
            {HELDOUT_SET: evaluations(sentences, 1)},
            origins=origins,
            uncorrected_share=0.3,
        )

    assert judge(held).promote, judge(held).reasons
    assert not judge(held[:7]).promote
