"""Judging a candidate: the evaluation sets of a run, both models (and the base model, when
it is not the one replaced) evaluated on them with the serving engine, and the gate's
decision with each held-out clip's speaker and selection."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model.asr.normalize import normalize_text
from model.asr.registry import BASE_VERSION, ModelRegistry
from training.config import RunConfig
from training.data import Example
from training.eval_memo import MemoTranscriber, memo_path
from training.gate import ClipOrigin, decide
from training.gate_policy import GENERAL_SET, HELDOUT_SET, RECENT_SET
from training.gate_records import GateDecision
from training.general_set import PACKAGED, load_general_set
from training.snapshot import HELDOUT_MANIFEST, RECENT_MANIFEST, TRAIN_MANIFEST, read_run_manifest

log = logging.getLogger(__name__)

# Under the model cache: what each model heard on the general set (training.eval_memo).
MEMO_DIR = "general-eval-memo"


def _heldout_origins(config: RunConfig, database: Any) -> tuple[dict[Path, ClipOrigin], float]:
    """Each judged clip's speaker and selection (by audio path), and the share of served
    transcripts nobody corrected: what the gate needs to cluster and de-bias. Every
    sample, not only the held-out side: test-then-train judges new train-side ones too."""
    from storage.audio_store import AudioStore
    from storage.samples import list_samples, uncorrected_share

    store = AudioStore(Path(config.audio_dir))
    with database.unit_of_work(read_only=True) as uow:
        samples = list_samples(uow.session, policy=config.split)
        share = uncorrected_share(uow.session)
    origins = {
        store.path(s.audio_sha256).resolve(): ClipOrigin(s.speaker, s.selected, s.confirmed)
        for s in samples
    }
    return origins, share


def _ct2_of(config: RunConfig, registry: ModelRegistry, name: str) -> Path:
    from model.asr import sources

    if name == BASE_VERSION:
        return sources.ct2_dir(
            config.base_model, cache_dir=Path(config.cache_dir), local_files_only=config.offline
        ).path
    return registry.get(name).ct2_dir


def _eval_sets(config: RunConfig, run_dir: Path) -> dict[str, list[Example]]:
    sets = {
        HELDOUT_SET: read_run_manifest(run_dir / HELDOUT_MANIFEST),
        RECENT_SET: read_run_manifest(run_dir / RECENT_MANIFEST),
    }
    if config.general_eval_set:
        general = load_general_set(config.general_eval_set).examples
        if config.general_eval_set == PACKAGED:  # public sentences, unlike an admin's set
            general = _unseen(general, run_dir / TRAIN_MANIFEST)
        sets[GENERAL_SET] = list(general)
    return {name: examples for name, examples in sets.items() if examples}


def _unseen(examples: Sequence[Example], train_manifest: Path) -> list[Example]:
    """The clips whose sentence this run did not train on: the packaged set's sentences
    are public, and a user who corrects clips into them must not improve the guard by
    teaching them (the held-out rule, ``training.snapshot``)."""
    if not train_manifest.is_file():
        return list(examples)
    seen = {normalize_text(e.text) for e in read_run_manifest(train_manifest)}
    kept = [e for e in examples if normalize_text(e.text) not in seen]
    if len(kept) < len(examples):
        log.info("general set: %d clips left out, trained on", len(examples) - len(kept))
    return kept


def _evaluate(
    config: RunConfig, ct2_dir: Path, model_name: str, sets: dict[str, list[Example]]
) -> dict[str, Any]:
    """One model on every set, loaded once, with the serving engine and options."""
    from model.asr.engines import CT2Transcriber
    from model.asr.evaluation import evaluate
    from model.asr.transcription import TranscribeOptions
    from training.evaluate import EVAL_LIMITS

    engine = CT2Transcriber(ct2_dir, model_name=model_name, cpu_threads=config.eval_cpu_threads)
    options = TranscribeOptions(language=config.language, beam_size=config.eval_beam_size)
    memo = None
    if GENERAL_SET in sets:  # the general set's words are kept between runs (eval_memo)
        memo = MemoTranscriber(engine, memo_path(Path(config.cache_dir) / MEMO_DIR, ct2_dir))
    results = {}
    for set_name, examples in sets.items():
        transcriber = memo if memo is not None and set_name == GENERAL_SET else engine
        evaluation = evaluate(
            transcriber, examples, options=options, limits=EVAL_LIMITS, skip_unreadable=True
        )
        rates = evaluation.rates
        log.info(
            "%s on %s (%d clips): WER %.1f%%, CER %.1f%%, %.0f s",
            model_name, set_name, rates.n, 100 * rates.wer, 100 * rates.cer, evaluation.elapsed,
        )  # fmt: skip
        results[set_name] = evaluation
    if memo is not None:
        memo.save()
        log.info("%s: %d general-set clips answered from %s", model_name, memo.hits, memo.path)
    return results


def judge(
    config: RunConfig,
    database: Any,
    registry: ModelRegistry,
    serving: str,
    candidate_name: str,
    candidate_ct2: Path,
) -> tuple[GateDecision, dict[str, Any], dict[str, list[Example]]]:
    """The gate's decision on the candidate against ``serving`` (the version it would
    replace) and the base model, with every evaluation and the sets they ran on."""
    sets = _eval_sets(config, config.run_dir)
    models = [(serving, _ct2_of(config, registry, serving)), (candidate_name, candidate_ct2)]
    if serving != BASE_VERSION:  # the gate compares with the base model too
        models.append((BASE_VERSION, _ct2_of(config, registry, BASE_VERSION)))
    evaluations = {name: _evaluate(config, ct2, name, sets) for name, ct2 in models}
    origins, uncorrected = _heldout_origins(config, database)
    decision = decide(
        evaluations[serving],
        evaluations[candidate_name],
        config.gate,
        base=evaluations.get(BASE_VERSION) if serving != BASE_VERSION else None,
        origins=origins,
        uncorrected_share=uncorrected,
    )
    return decision, evaluations, sets
