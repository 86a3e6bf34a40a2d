"""Fine-tune Whisper on (audio, text) pairs with transformers' ``Seq2SeqTrainer``.

Two modes, chosen by ``mode="auto"`` (GPU when CUDA is there) and overridable:

* ``gpu``: full fine-tuning in bf16 (fp16 where bf16 is missing), features computed on
  the fly by ``dataloader_workers`` processes with a fresh random speed/noise perturbation
  per example and step. Several GPUs
  work without code changes: ``torchrun --nproc_per_node N -m training finetune ARGS.json``.
* ``cpu``: the encoder's lower layers are frozen and their outputs kept in a persistent,
  content-addressed float16 cache (``training.encoder_cache``: computed once per base
  model, clip and augmented copy, across runs); the top ``encoder_layers``
  encoder layers and the decoder train over it. Full fine-tuning costs 17-30 s per step of
  8 on 2 cores; all six layers over the cached convolutions (the default) ~15 s, the top
  4 ~11 s, and unlike decoder-only training they adapt to new voices (NOTES §3;
  benchmarks/results/training.md).

Best step, not last: a share of the training *sentences* (every clip of a sentence, so
the validation speaks sentences training never saw) is kept out; its loss is measured at
every checkpoint, training stops when it stops improving, and the best checkpoint's
weights are the result. More steps or more data can then no longer make the result worse
on new sentences. When the share is fewer than ``min_validation_sentences`` sentences
there is no validation and the last step is kept. ``validation_start`` > 0 measures it only
from that share of the step budget on: a few sentences' loss can favour an early step
while new voices still gain from training.

Features have the model's own number of mel bins (``num_mel_bins``: 128 for large-v3).
The step budget is ``max_epochs`` passes over the training clips (``planned_steps``).
``average_checkpoints`` > 1 makes the result the mean of the last weight snapshots up to
the kept step (``training.averaging``); ``wise_alphas`` makes the result (averaged first,
if asked) a WiSE-FT interpolation toward the start weights (``training.robust``), alpha
chosen on the validation split.

``anchor_strength`` > 0 adds an L2 pull of every trainable weight toward the start model
(L2-SP), a guard against forgetting what the start model did well.

Checkpoints are written every ``checkpoint_every`` steps (model, optimizer, scheduler, RNG
and data order) and a killed run resumes from the newest one (``get_last_checkpoint``).
The final model is saved as a plain ``WhisperForConditionalGeneration`` with its processor
files, so it stands alone and converts to CTranslate2.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.asr.normalize import normalize_text
from training.arguments import FinetuneArguments, FinetuneResult, Mode, TrainingError
from training.data import LabelEncoder, read_manifest, split_validation
from training.trainer import (
    Progress,
    TrainingProgress,
    TrainTimer,
    best_validation,
    make_trainer,
)

log = logging.getLogger(__name__)

ARGS_FILE = "finetune_args.json"
RESULT_FILE = "finetune_result.json"
CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
ENCODER_CACHE_DIR = "encoder-cache"
# Files of a checkpoint that are weights or model config; everything else is the processor.
_MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "pytorch_model.bin")
_LOG_EVERY = 5
_SCHEDULERS = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine"}


__all__ = ["FinetuneArguments", "FinetuneResult", "TrainingError", "finetune", "split_validation"]


def resolve_mode(mode: str) -> Mode:
    if mode in ("cpu", "gpu"):
        return mode  # type: ignore[return-value]
    if mode != "auto":
        raise TrainingError(f"unknown training mode {mode!r}; use auto, cpu or gpu")
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def planned_steps(args: FinetuneArguments, clips: int) -> int:
    """The step budget: ``max_epochs`` passes over the ``clips`` training clips (a
    perturbed copy counts as its clip), so it grows with the data; ``max_steps`` > 0 caps
    it. By default there is no validation slice (and few corrections are too few for one),
    and nothing else would stop a run from learning them by heart."""
    if args.max_epochs <= 0:
        if args.max_steps <= 0:
            raise TrainingError("set max_epochs or max_steps: the run has no step budget")
        return args.max_steps
    per_step = args.batch_size * args.gradient_accumulation_steps
    steps = max(1, math.ceil(args.max_epochs * clips / per_step))
    return min(args.max_steps, steps) if args.max_steps > 0 else steps


def encoder_cache_root(args: FinetuneArguments) -> Path:
    """The persistent encoder cache (``training.encoder_cache``); inside the output folder
    when none is configured (then nothing outlives the run's folder)."""
    return (
        Path(args.encoder_cache_dir)
        if args.encoder_cache_dir
        else (Path(args.output_dir) / ENCODER_CACHE_DIR)
    )


def finetune(args: FinetuneArguments, *, progress: Progress | None = None) -> FinetuneResult:
    """Train, resuming from the newest checkpoint in ``output_dir`` if there is one."""
    import torch
    from transformers import EarlyStoppingCallback, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from training._whisper_model import PartialEncoderWhisper
    from training.robust import trainable_state

    mode = resolve_mode(args.mode)
    if mode == "gpu" and not torch.cuda.is_available():
        raise TrainingError("gpu mode asked for, but CUDA is not available")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / ARGS_FILE).write_text(args.to_json() + "\n", encoding="utf-8")
    set_seed(args.seed)

    examples = read_manifest(Path(args.train_manifest), allow_outside=True)
    if not examples:
        raise TrainingError("there are no training examples")
    train_examples, validation = split_validation(
        examples, fraction=args.validation_fraction, min_sentences=args.min_validation_sentences
    )
    model = PartialEncoderWhisper.from_pretrained(args.model_dir, dtype=torch.float32)
    model.generation_config.forced_decoder_ids = None
    if progress is not None:
        total = planned_steps(args, len(train_examples))
        progress(TrainingProgress(0, total, phase="preparing data"))
    data = _training_data(args, mode, model, train_examples, validation)
    max_steps = planned_steps(args, len(train_examples))
    started_at = time.monotonic()  # the time budget is for training: caching is incremental
    log.info(
        "%s mode: %d training examples, %d validation clips, %d trainable parameters, "
        "%d steps", mode, len(data.dataset), len(validation), data.trainable, max_steps,
    )  # fmt: skip

    checkpoints = output / CHECKPOINTS_DIR
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    validate = data.eval_dataset is not None
    timer = TrainTimer(args, progress, started_at=started_at, validate=validate)
    trainer = _trainer(args, mode, model, data, checkpoints, max_steps, timer)
    start_weights = trainable_state(model)  # the base model's (a resume loads over them)
    started = time.perf_counter()
    outcome = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - started
    trainer.save_state()
    trainer.remove_callback(EarlyStoppingCallback)  # else later evaluations log a false alarm
    averaged = _average(args, trainer, checkpoints, validate)  # first average, then WiSE-FT
    wise = _wise(args, trainer, start_weights, validate)
    _save_final(trainer.model, Path(args.model_dir), output / FINAL_DIR)
    result = _result(
        args, mode, trainer, timer, data, validation, outcome, seconds, max_steps, last, wise,
        averaged,
    )  # fmt: skip
    (output / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=2) + "\n", "utf-8")
    return result


def _wise(args: FinetuneArguments, trainer: Any, start_weights: Any, validate: bool) -> Any:
    """WiSE-FT's chosen alpha and losses, or None when it is off or has no slice to choose on."""
    from training.robust import choose_alpha, parse_alphas

    alphas = parse_alphas(args.wise_alphas)
    if alphas and not validate:
        log.warning("WiSE-FT skipped: it chooses alpha on a validation slice, and there is none")
    return choose_alpha(trainer, start_weights, alphas) if alphas and validate else None


@dataclass
class _TrainingData:
    dataset: Any
    eval_dataset: Any
    stats: Any  # training._datasets.CacheStats
    input_key: str
    trainable: int


def _training_data(
    args: FinetuneArguments, mode: str, model: Any, train_examples: list, validation: list
) -> _TrainingData:
    """cpu mode: the frozen lower encoder's outputs, from the persistent cache; gpu mode:
    log-mel features with the model's own mel bins, computed by DataLoader workers."""
    from training._datasets import CacheStats, FeatureDataset, cached_dataset
    from training.encoder_cache import EncoderCache, deleted_clips, model_key, prune

    labels = LabelEncoder(Path(args.model_dir), language=args.language, task=args.task)
    eval_dataset: Any = None
    if mode != "cpu":
        trainable = model.configure_trainable(
            encoder_layers=len(model.model.encoder.layers), train_embeddings=True, front_end=True
        )
        n_mels = model.config.num_mel_bins
        dataset = FeatureDataset(train_examples, labels, seed=args.seed, n_mels=n_mels)
        if validation:
            eval_dataset = FeatureDataset(
                validation, labels, seed=args.seed, n_mels=n_mels, augment=False
            )
        return _TrainingData(dataset, eval_dataset, CacheStats(), "input_features", trainable)
    trainable = model.configure_trainable(
        encoder_layers=args.encoder_layers,
        train_embeddings=args.train_embeddings,
        decoder=args.decoder,
    )
    cache = EncoderCache(
        encoder_cache_root(args), model_key(Path(args.model_dir), model.cached_layers)
    )
    dataset, stats = cached_dataset(
        model, train_examples, labels, cache=cache,
        augment_copies=args.augment_copies, seed=args.seed,
    )  # fmt: skip
    if validation:
        eval_dataset, _ = cached_dataset(
            model, validation, labels, cache=cache, augment_copies=0, seed=args.seed
        )
    if args.encoder_cache_dir:
        # The persistent cache keeps what this run uses: purged or forgotten audio goes.
        used = {path.parent.name for path, _ in (*dataset.rows, *_rows(eval_dataset))}
        used -= deleted_clips(e.audio_path for e in (*train_examples, *validation))
        pruned = prune(Path(args.encoder_cache_dir), key=cache.key, keep=used)
        log.info("encoder cache: %d clips no run uses any more deleted", pruned)
    return _TrainingData(dataset, eval_dataset, stats, "lower_hidden_states", trainable)


def _trainer(
    args: FinetuneArguments,
    mode: str,
    model: Any,
    data: _TrainingData,
    checkpoints: Path,
    max_steps: int,
    timer: TrainTimer,
) -> Any:
    from transformers import EarlyStoppingCallback

    from training._datasets import Collator

    validate = data.eval_dataset is not None
    training_args = _training_arguments(args, mode, checkpoints, max_steps, validate)
    callbacks: list[Any] = [timer.callback()]
    if args.average_checkpoints > 1:
        from training.averaging import SnapshotCallback

        first = _warmup_steps(args, max_steps)  # snapshots from the end of warm-up on
        callbacks.append(
            SnapshotCallback(checkpoints, args.average_every, args.average_checkpoints, first)
        )
    if validate and args.early_stopping_patience > 0:
        callbacks.append(
            EarlyStoppingCallback(early_stopping_patience=args.early_stopping_patience)
        )
    trainer = make_trainer(
        model=model,
        args=training_args,
        train_dataset=data.dataset,
        eval_dataset=data.eval_dataset,
        data_collator=Collator(data.input_key),
        callbacks=callbacks,
        anchor_strength=args.anchor_strength,
    )
    # Our forward takes no loss kwargs: the Trainer must scale the loss for accumulation.
    trainer.model_accepts_loss_kwargs = False
    return trainer


def _training_arguments(
    args: FinetuneArguments, mode: str, checkpoints: Path, max_steps: int, validate: bool
) -> Any:
    import torch
    from transformers import Seq2SeqTrainingArguments

    bf16 = mode == "gpu" and torch.cuda.is_bf16_supported()
    return Seq2SeqTrainingArguments(
        output_dir=str(checkpoints),
        max_steps=max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        warmup_steps=_warmup_steps(args, max_steps),
        lr_scheduler_type=_SCHEDULERS[args.lr_schedule],
        save_strategy="steps",
        save_steps=args.checkpoint_every,
        eval_strategy="steps" if validate else "no",
        eval_steps=args.checkpoint_every if validate else None,
        eval_delay=math.ceil(min(1.0, args.validation_start) * max_steps) if validate else 0,
        load_best_model_at_end=validate,
        metric_for_best_model="eval_loss" if validate else None,
        greater_is_better=False if validate else None,
        # With best-model tracking the Trainer also keeps the best checkpoint.
        save_total_limit=1,
        logging_steps=_LOG_EVERY,
        report_to=[],
        seed=args.seed,
        remove_unused_columns=False,
        label_names=["labels"],
        bf16=bf16,
        fp16=mode == "gpu" and not bf16,
        use_cpu=mode == "cpu",
        dataloader_num_workers=args.dataloader_workers if mode == "gpu" else 0,
        dataloader_persistent_workers=mode == "gpu" and args.dataloader_workers > 0,
        disable_tqdm=True,
    )


def _warmup_steps(args: FinetuneArguments, max_steps: int) -> int:
    return round(args.warmup_ratio * max_steps)


def _average(
    args: FinetuneArguments, trainer: Any, checkpoints: Path, validate: bool
) -> tuple[tuple[int, ...], float | None]:
    """Checkpoint averaging, if on (``training.averaging.average_kept``)."""
    if args.average_checkpoints < 2:
        return (), None
    from training.averaging import average_kept

    return average_kept(trainer, checkpoints, args.average_checkpoints, validate=validate)


def _result(
    args: FinetuneArguments,
    mode: Mode,
    trainer: Any,
    timer: TrainTimer,
    data: _TrainingData,
    validation: list,
    outcome: Any,
    seconds: float,
    max_steps: int,
    last: str | None,
    wise: Any,
    averaged: tuple[tuple[int, ...], float | None],
) -> FinetuneResult:
    validate = data.eval_dataset is not None
    steps = int(trainer.state.global_step)
    steps_here = max(1, steps - timer.first_step)
    per_step = timer.step_seconds / steps_here if timer.steps else None
    batch = args.batch_size * args.gradient_accumulation_steps
    best_step, best_loss = best_validation(trainer.state) if validate else (None, None)
    return FinetuneResult(
        model_dir=Path(args.output_dir) / FINAL_DIR,
        mode=mode,
        steps=steps,
        max_steps=max_steps,
        train_loss=float(outcome.training_loss) if outcome.training_loss else None,
        train_seconds=round(seconds, 2),
        seconds_per_step=round(per_step, 3) if per_step else None,
        samples_per_second=round(batch / per_step, 3) if per_step else None,
        examples=len(data.dataset),
        resumed_from=Path(last).name if last else None,
        stopped_early=steps < max_steps,
        best_step=best_step if validate else steps,
        best_validation_loss=best_loss,
        validation_clips=len(validation),
        validation_sentences=len({normalize_text(e.text) for e in validation}),
        encoder_cache_reused=data.stats.reused,
        encoder_cache_computed=data.stats.computed,
        encoder_cache_seconds=data.stats.seconds,
        wise_alpha=wise.alpha if wise else None,
        wise_losses={str(a): v for a, v in wise.losses.items()} if wise else {},
        averaged_steps=list(averaged[0]),
        averaged_validation_loss=averaged[1],
    )


def _rows(dataset: Any) -> list[Any]:
    return list(dataset.rows) if dataset is not None else []


def _save_final(model: Any, start_dir: Path, final: Path) -> None:
    """Save a plain Whisper model plus the start model's processor files, atomically."""
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to_plain().save_pretrained(tmp, safe_serialization=True)
    for item in start_dir.iterdir():
        if item.is_file() and not item.name.startswith(_MODEL_FILES):
            shutil.copyfile(item, tmp / item.name)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
