"""Fine-tune Whisper on (audio, text) pairs with transformers' ``Seq2SeqTrainer``.

Two modes, chosen by ``mode="auto"`` (GPU when CUDA is there) and overridable:

* ``gpu``: full fine-tuning in bf16 (fp16 where bf16 is missing), features computed on
  the fly with a fresh random speed/noise perturbation per example and step. Several GPUs
  work without code changes: ``torchrun --nproc_per_node N -m training finetune ARGS.json``.
* ``cpu``: the encoder's lower layers are frozen and their outputs computed once per clip
  (and per augmented copy) into a float16 cache on disk; the top ``encoder_layers``
  encoder layers and the decoder train over it. Full fine-tuning costs 17-30 s per step of
  8 on 2 cores; top-2 costs ~5-8 s and, unlike decoder-only training, adapts to new voices
  (NOTES §3; benchmarks/results/training.md).

Checkpoints are written every ``checkpoint_every`` steps (model, optimizer, scheduler, RNG
and data order) and a killed run resumes from the newest one (``get_last_checkpoint``).
The final model is saved as a plain ``WhisperForConditionalGeneration`` with its processor
files, so it stands alone and converts to CTranslate2.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from training.data import (
    MAX_TRAIN_SECONDS,
    SAMPLE_RATE,
    DataError,
    Example,
    LabelEncoder,
    ServingFeatures,
    load_audio,
    pad_labels,
    perturb,
    random_perturbations,
    read_manifest,
)

log = logging.getLogger(__name__)

Mode = Literal["cpu", "gpu"]
ARGS_FILE = "finetune_args.json"
RESULT_FILE = "finetune_result.json"
CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
CACHE_FILE = "encoder_cache.npy"
CACHE_INDEX_FILE = "encoder_cache.json"
# Files of a checkpoint that are weights or model config; everything else is the processor.
_MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "pytorch_model.bin")
_CACHE_BATCH = 8
_LOG_EVERY = 5

# (step, max_steps, metrics such as {"loss": ...} or {"phase": ...})
Progress = Callable[[int, int, dict[str, Any]], None]


class TrainingError(Exception):
    """Fine-tuning cannot start or did not finish."""


@dataclass
class FinetuneArguments:
    """One fine-tuning job; saved as JSON beside its output and reloadable with
    ``transformers.HfArgumentParser(FinetuneArguments).parse_json_file``."""

    model_dir: str = field(metadata={"help": "Hugging Face Whisper checkpoint to start from"})
    train_manifest: str = field(metadata={"help": "TSV of audio_path<TAB>text (or audiofolder)"})
    output_dir: str = field(metadata={"help": "checkpoints/ and final/ are written here"})
    mode: str = field(default="auto", metadata={"help": "auto, cpu or gpu"})
    max_steps: int = field(default=40, metadata={"help": "optimizer steps"})
    max_train_seconds: float = field(
        default=0.0, metadata={"help": "stop (and save) after this long; 0 = no limit"}
    )
    learning_rate: float = field(default=3e-5, metadata={"help": "learning rate after warm-up"})
    warmup_ratio: float = field(default=0.5, metadata={"help": "share of steps warming up"})
    batch_size: int = field(default=8, metadata={"help": "examples per device and step"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "steps per update"})
    encoder_layers: int = field(
        default=4, metadata={"help": "cpu mode: trainable top encoder layers (6 = all)"}
    )
    train_embeddings: bool = field(default=False, metadata={"help": "train token embeddings"})
    augment_copies: int = field(
        default=1, metadata={"help": "cpu mode: speed/noise-perturbed copies per clip"}
    )
    checkpoint_every: int = field(default=50, metadata={"help": "steps between checkpoints"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    language: str = field(default="it", metadata={"help": "forced language"})
    task: str = field(default="transcribe", metadata={"help": "forced task"})
    threads: int = field(default=0, metadata={"help": "CPU threads for torch; 0 = default"})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, path: Path) -> FinetuneArguments:
        from transformers import HfArgumentParser

        (args,) = HfArgumentParser(cls).parse_json_file(str(path))
        return args


@dataclass(frozen=True)
class FinetuneResult:
    model_dir: Path
    mode: Mode
    steps: int
    max_steps: int
    train_loss: float | None
    train_seconds: float
    seconds_per_step: float | None
    samples_per_second: float | None
    examples: int
    resumed_from: str | None
    stopped_early: bool

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_dir"] = str(self.model_dir)
        return data


def resolve_mode(mode: str) -> Mode:
    if mode in ("cpu", "gpu"):
        return mode  # type: ignore[return-value]
    if mode != "auto":
        raise TrainingError(f"unknown training mode {mode!r}; use auto, cpu or gpu")
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def finetune(args: FinetuneArguments, *, progress: Progress | None = None) -> FinetuneResult:
    """Train, resuming from the newest checkpoint in ``output_dir`` if there is one."""
    import torch
    from transformers import Seq2SeqTrainer, Seq2SeqTrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    from training._whisper_model import PartialEncoderWhisper

    started_at = time.monotonic()  # the time budget covers caching too
    mode = resolve_mode(args.mode)
    if mode == "gpu" and not torch.cuda.is_available():
        raise TrainingError("gpu mode asked for, but CUDA is not available")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / ARGS_FILE).write_text(args.to_json() + "\n", encoding="utf-8")
    set_seed(args.seed)

    examples = read_manifest(Path(args.train_manifest))
    if not examples:
        raise TrainingError("there are no training examples")
    labels = LabelEncoder(Path(args.model_dir), language=args.language, task=args.task)
    model = PartialEncoderWhisper.from_pretrained(args.model_dir, dtype=torch.float32)
    model.generation_config.forced_decoder_ids = None
    if progress is not None:
        progress(0, args.max_steps, {"phase": "preparing data"})
    if mode == "cpu":
        trainable = model.configure_trainable(
            encoder_layers=args.encoder_layers, train_embeddings=args.train_embeddings
        )
        dataset: Any = _cached_dataset(model, examples, labels, args, output)
        input_key = "lower_hidden_states"
    else:
        trainable = model.configure_trainable(
            encoder_layers=len(model.model.encoder.layers), train_embeddings=True
        )
        dataset = _FeatureDataset(examples, labels, seed=args.seed)
        input_key = "input_features"
    log.info("%s mode: %d examples, %d trainable parameters", mode, len(dataset), trainable)

    checkpoints = output / CHECKPOINTS_DIR
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    bf16 = mode == "gpu" and torch.cuda.is_bf16_supported()
    training_args = Seq2SeqTrainingArguments(
        output_dir=str(checkpoints),
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        warmup_steps=round(args.warmup_ratio * args.max_steps),
        # Constant after warm-up: a run stopped by its time budget is not left mid-decay.
        lr_scheduler_type="constant_with_warmup",
        save_strategy="steps",
        save_steps=args.checkpoint_every,
        save_total_limit=1,
        logging_steps=_LOG_EVERY,
        report_to=[],
        seed=args.seed,
        remove_unused_columns=False,
        label_names=["labels"],
        bf16=bf16,
        fp16=mode == "gpu" and not bf16,
        use_cpu=mode == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    timer = _TrainTimer(args, progress, started_at=started_at)
    trainer = Seq2SeqTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=_Collator(input_key),
        callbacks=[timer.callback()],
    )
    # Our forward takes no loss kwargs: the Trainer must scale the loss for accumulation.
    trainer.model_accepts_loss_kwargs = False
    started = time.perf_counter()
    outcome = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - started
    trainer.save_state()
    final = output / FINAL_DIR
    _save_final(trainer.model, Path(args.model_dir), final)
    steps = int(trainer.state.global_step)
    steps_here = max(1, steps - timer.first_step)
    per_step = timer.step_seconds / steps_here if timer.steps else None
    batch = args.batch_size * args.gradient_accumulation_steps
    result = FinetuneResult(
        model_dir=final,
        mode=mode,
        steps=steps,
        max_steps=args.max_steps,
        train_loss=float(outcome.training_loss) if outcome.training_loss else None,
        train_seconds=round(seconds, 2),
        seconds_per_step=round(per_step, 3) if per_step else None,
        samples_per_second=round(batch / per_step, 3) if per_step else None,
        examples=len(dataset),
        resumed_from=Path(last).name if last else None,
        stopped_early=steps < args.max_steps,
    )
    (output / RESULT_FILE).write_text(json.dumps(result.as_dict(), indent=2) + "\n", "utf-8")
    return result


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


class _TrainTimer:
    """Reports progress and stops (with a checkpoint) when the time budget is spent."""

    def __init__(
        self, args: FinetuneArguments, progress: Progress | None, *, started_at: float
    ) -> None:
        self.args = args
        self.progress = progress
        self.started = started_at
        self.last_step_at = self.started
        self.first_step = 0
        self.steps = 0
        self.step_seconds = 0.0

    def callback(self) -> Any:
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                timer.first_step = int(state.global_step)
                timer.last_step_at = time.monotonic()
                if timer.progress is not None:
                    timer.progress(timer.first_step, int(state.max_steps), {"phase": "training"})

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
                now = time.monotonic()
                timer.steps += 1
                timer.step_seconds += now - timer.last_step_at
                timer.last_step_at = now
                budget = timer.args.max_train_seconds
                if budget > 0 and now - timer.started > budget:
                    log.info("time budget of %.0f s spent at step %d", budget, state.global_step)
                    control.should_training_stop = True
                    control.should_save = True
                if timer.progress is not None:
                    loss = next(
                        (e["loss"] for e in reversed(state.log_history) if "loss" in e), None
                    )
                    metrics = {} if loss is None else {"loss": float(loss)}
                    timer.progress(int(state.global_step), int(state.max_steps), metrics)
                return control

        return _Callback()


class _Collator:
    """Stacks inputs and pads labels with -100 (ignored by the loss)."""

    def __init__(self, input_key: str) -> None:
        self.input_key = input_key

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        inputs = torch.stack(
            # np.array copies: cache rows are read-only float16 memmap views.
            [torch.from_numpy(np.array(f[self.input_key], dtype=np.float32)) for f in features]
        )
        return {self.input_key: inputs, "labels": pad_labels([f["labels"] for f in features])}


class _FeatureDataset:
    """GPU mode: audio decoded per item, randomly perturbed, serving features."""

    def __init__(self, examples: Sequence[Example], labels: LabelEncoder, *, seed: int) -> None:
        self.examples = list(examples)
        self.labels = [labels(e.text) for e in self.examples]
        self.features = ServingFeatures()
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        audio = load_audio(self.examples[index].audio_path)
        if self.rng.random() < 0.5:  # half the time the clip as recorded
            (perturbation,) = random_perturbations(1, rng=self.rng)
            audio = perturb(audio, perturbation, rng=self.rng)
        return {"input_features": self.features(audio), "labels": self.labels[index]}


class _CachedDataset:
    """CPU mode: rows of the lower-encoder cache (a float16 memmap) with their labels."""

    def __init__(self, cache: np.ndarray, labels: list[list[int]]) -> None:
        self.cache = cache
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"lower_hidden_states": self.cache[index], "labels": self.labels[index]}


def _cached_dataset(
    model: Any,
    examples: Sequence[Example],
    labels: LabelEncoder,
    args: FinetuneArguments,
    output: Path,
) -> _CachedDataset:
    """Compute (or reuse, after a resume) the lower-encoder outputs of every clip and copy."""
    import torch

    index_path, cache_path = output / CACHE_INDEX_FILE, output / CACHE_FILE
    identity = {
        "model_dir": str(Path(args.model_dir).resolve()),
        "cached_layers": model.cached_layers,
        "augment_copies": args.augment_copies,
        "seed": args.seed,
        "keys": [e.key for e in examples],
    }
    if index_path.is_file() and cache_path.is_file():
        saved = json.loads(index_path.read_text(encoding="utf-8"))
        if saved.get("identity") == identity:
            log.info("reusing the encoder cache in %s", cache_path)
            cache = np.load(cache_path, mmap_mode="r")
            return _CachedDataset(cache, saved["labels"])

    features = ServingFeatures()
    rng = np.random.default_rng(args.seed)
    rows: list[tuple[np.ndarray, list[int]]] = []  # (features, label ids)
    for example in examples:
        try:
            audio = load_audio(example.audio_path)
        except DataError as exc:
            log.warning("skipping %s: %s", example.key, exc)
            continue
        if audio.size > MAX_TRAIN_SECONDS * SAMPLE_RATE or audio.size == 0:
            log.warning("skipping %s: %.1f s long", example.key, audio.size / SAMPLE_RATE)
            continue
        ids = labels(example.text)
        rows.append((features(audio), ids))
        for perturbation in random_perturbations(args.augment_copies, rng=rng):
            rows.append((features(perturb(audio, perturbation, rng=rng)), ids))
    if not rows:
        raise TrainingError("no usable training audio")
    cache_path.unlink(missing_ok=True)
    index_path.unlink(missing_ok=True)
    width = model.config.d_model
    positions = model.config.max_source_positions
    cache = np.lib.format.open_memmap(
        cache_path, mode="w+", dtype=np.float16, shape=(len(rows), positions, width)
    )
    started = time.perf_counter()
    model.eval()
    for start in range(0, len(rows), _CACHE_BATCH):
        chunk = rows[start : start + _CACHE_BATCH]
        inputs = torch.from_numpy(np.stack([f for f, _ in chunk]))
        cache[start : start + len(chunk)] = model.lower_encoder(inputs).numpy().astype(np.float16)
    cache.flush()
    model.train()
    log.info("cached %d clips in %.1f s", len(rows), time.perf_counter() - started)
    label_rows = [ids for _, ids in rows]
    index_path.write_text(json.dumps({"identity": identity, "labels": label_rows}), "utf-8")
    del cache
    return _CachedDataset(np.load(cache_path, mmap_mode="r"), label_rows)
