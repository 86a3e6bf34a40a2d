"""The demo's null candidate: a run with learning rate 0 over many installation salts.

A run with learning rate 0 ends with the base model's weights, saved and exported to
CTranslate2 int8 exactly as a trained candidate is (``training.finetune._save_final`` then
``model.asr.convert.export_hf_to_ct2``). So the null candidate is built once, by that
export, instead of training 20 times, and both models are scored once on every correction
and on the general set. Each salt then decides which sentences are held out
(``storage.samples.assign_splits`` under the bot's default split policy, floor included, as
a fresh installation would with that salt), and the gate (``training.gate.decide``, default
policy, each clip's voice as its speaker) judges the candidate on that salt's held-out clips
and the general set. A sound gate promotes it for no salt.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from model.asr.evaluation import Evaluation
from model.asr.normalize import error_rates

BEAM_SIZE = 5


def salt_bytes(salt: int) -> bytes:
    """The salt ``demo_training.set_salt`` writes for installation number ``salt``."""
    return hashlib.sha256(f"whisper-it demo salt {salt}".encode()).digest()


def null_candidate(
    workdir: Path, cache_dir: Path, manifests: dict[str, Path], *, salts: int, rounds: int
) -> dict[str, Any]:
    """The gate's verdicts on the null candidate, judged on the corrections of the first
    ``rounds`` rounds (what an installation has after them) under ``salts`` salts."""
    from model.asr import convert, sources
    from model.asr.tsv import read_tsv
    from storage.samples import EVAL, assign_splits
    from storage.split_policy import DEFAULT_EVAL_FRACTION
    from training.config import split_policy
    from training.gate import ClipOrigin, decide
    from training.gate_policy import GENERAL_SET, HELDOUT_SET, GatePolicy

    base_ct2 = sources.ct2_dir("packaged:whisper-base", cache_dir=cache_dir).path
    base_hf = sources.hf_dir("packaged:whisper-base", cache_dir=cache_dir).path
    null_ct2 = convert.export_hf_to_ct2(
        base_hf, workdir / "null-candidate-ct2", quantization="int8", overwrite=True
    )
    corrections = [c for n in range(1, rounds + 1) for c in read_tsv(manifests[f"round{n}"])]
    split = split_policy(DEFAULT_EVAL_FRACTION)
    # Imported samples name their speaker and were selected by nobody's errors.
    origins = {c.audio_path: ClipOrigin(c.speaker or "", False) for c in corrections}
    general = read_tsv(manifests["festival"])
    scored = {
        name: (_evaluate(ct2, name, corrections), _evaluate(ct2, name, general))
        for name, ct2 in (("base", base_ct2), ("null", null_ct2))
    }
    policy = GatePolicy()
    trials = []
    for salt in range(salts):
        key = salt_bytes(salt)
        sides = assign_splits([c.text for c in corrections], salt=key, policy=split)
        held = {c.audio_path for c in corrections if sides[split.sentence_key(c.text)] == EVAL}
        sets: dict[str, dict[str, Evaluation]] = {}
        for name, (heldout, general_eval) in scored.items():
            sets[name] = {GENERAL_SET: general_eval}
            if held:
                sets[name][HELDOUT_SET] = _subset(heldout, held)
        decision = decide(sets["base"], sets["null"], policy, origins=origins)
        heldout_clips = sets["null"].get(HELDOUT_SET)
        trials.append(
            {
                "salt": salt,
                "heldout_clips": len(heldout_clips.clips) if heldout_clips else 0,
                "heldout_sentences": len({c.reference for c in heldout_clips.clips})
                if heldout_clips
                else 0,
                "promoted": decision.promote,
                "reasons": list(decision.reasons),
            }
        )
    return {
        "note": (
            f"{len(corrections)} corrections (rounds 1-{rounds}) and {len(general)} general clips, "
            "scored once by each model; held-out split per salt by the default split policy "
            f"(eval_fraction {split.eval_fraction}, at least {split.min_eval_sentences} "
            "sentences); gate: default policy, voices as speakers."
        ),
        "promoted": sum(t["promoted"] for t in trials),
        "trials": trials,
    }


def _evaluate(ct2_dir: Path, name: str, clips: list[Any]) -> Evaluation:
    from model.asr.engines import CT2Transcriber
    from model.asr.evaluation import evaluate
    from model.asr.transcription import TranscribeOptions

    engine = CT2Transcriber(ct2_dir, model_name=name)
    return evaluate(engine, clips, options=TranscribeOptions(beam_size=BEAM_SIZE))


def _subset(evaluation: Evaluation, paths: set[Path]) -> Evaluation:
    clips = tuple(c for c in evaluation.clips if c.audio_path in paths)
    rates = error_rates([c.reference for c in clips], [c.hypothesis for c in clips])
    seconds = sum(c.duration for c in clips)
    return Evaluation(evaluation.model, evaluation.engine, rates, clips, seconds, 0.0)
