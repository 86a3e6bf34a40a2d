"""Fine-tuning arguments and result: plain dataclasses with no heavy imports, so the bot,
the CLI and the run configuration can hold them without loading torch."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from training.configurable import configurable

Mode = Literal["cpu", "gpu"]


class TrainingError(Exception):
    """Fine-tuning cannot start or did not finish."""


@dataclass(frozen=True)
class FinetuneArguments:
    """One fine-tuning job; saved as JSON beside its output and reloadable with
    ``transformers.HfArgumentParser(FinetuneArguments).parse_json_file``.

    ``model_dir``, ``train_manifest`` and ``output_dir`` are filled in per run (the run
    configuration carries the rest as its training policy).
    """

    model_dir: str = field(default="", metadata={"help": "Whisper checkpoint to start from"})
    train_manifest: str = field(default="", metadata={"help": "TSV of audio_path<TAB>text"})
    output_dir: str = field(default="", metadata={"help": "checkpoints/ and final/ go here"})
    mode: Literal["auto", "cpu", "gpu"] = configurable(
        "auto", setting="train_mode", help="auto = gpu when CUDA is available, else cpu"
    )
    # Every run trains from the base model; its step budget is max_epochs passes over the
    # training clips, so it grows with the data (issue 19); max_steps only caps it.
    max_steps: int = configurable(
        0, setting="train_max_steps", help="Cap on optimizer steps per run; 0 = none"
    )
    max_epochs: float = configurable(
        3.0,
        setting="train_max_epochs",
        help="Step budget: passes over the training clips (grows with the data)",
    )
    max_train_seconds: float = field(
        default=0.0,
        metadata={"help": "stop (and save) after training this long; 0 = no limit"},
    )
    encoder_cache_dir: str = field(
        default="",
        metadata={"help": "cpu mode: persistent lower-encoder cache; empty = in output_dir"},
    )
    wise_alphas: str = configurable(
        "",
        setting="train_wise_alphas",
        help="WiSE-FT: alphas (e.g. 0.5,0.75,1) tried on the validation split; empty = off",
    )
    # Checkpoint averaging (training.averaging). benchmarks/results/checkpoint_averaging.md:
    # the mean of the last 4 snapshots, 3 steps apart, against the kept checkpoint: unseen
    # speech 14.5% -> 13.5% WER, festival 13.9% -> 10.5% (base 11.7%).
    average_checkpoints: int = configurable(
        4,
        setting="train_average_checkpoints",
        help="Candidate = mean of this many weight snapshots ending at the kept step; 0/1 = off",
        ge=0,
    )
    average_every: int = configurable(
        3,
        setting="train_average_every",
        help="Steps between the weight snapshots averaged (taken after warm-up)",
        ge=1,
    )
    dataloader_workers: int = configurable(
        4,
        setting="train_dataloader_workers",
        help="gpu mode: DataLoader worker processes feeding the GPU (0 = none)",
        ge=0,
    )
    learning_rate: float = configurable(
        5e-5, setting="train_learning_rate", help="learning rate after warm-up"
    )
    warmup_ratio: float = configurable(
        0.5, setting="train_warmup_ratio", help="share of steps warming up"
    )
    # Constant by default: a run stopped by its time budget is not left mid-decay, and a
    # linear decay learned less in the same steps (benchmarks/results/training_ablation.md).
    lr_schedule: Literal["constant", "linear", "cosine"] = configurable(
        "constant",
        setting="train_lr_schedule",
        help="learning rate after warm-up: constant, or decaying to 0 (linear, cosine)",
    )
    batch_size: int = configurable(
        8, setting="train_batch_size", help="examples per device and step"
    )
    gradient_accumulation_steps: int = configurable(
        1, setting="train_gradient_accumulation", help="steps per update"
    )
    # All of whisper-base's 6 (only the convolutions stay cached): unseen voices 11.0% ->
    # 9.5% in training_ablation.md, and lower at every round of demo_training_all_layers_*
    # (salt 1 ends 11.8% against 14.3%), for 1.35x the step time. A larger model on a
    # slow CPU may want fewer.
    encoder_layers: int = configurable(
        6, setting="train_encoder_layers", help="cpu mode: trainable top encoder layers"
    )
    # benchmarks/results/training_ablation.md: with the decoder's language model kept and
    # 5e-5, unseen sentences and voices 12.5% -> 10.5% WER, festival 10.5% (base 11.7%).
    decoder: Literal["all", "cross_attention"] = configurable(
        "cross_attention",
        setting="train_decoder",
        help="cpu mode: decoder weights trained: all or cross_attention",
    )
    train_embeddings: bool = field(default=False, metadata={"help": "train token embeddings"})
    augment_copies: int = configurable(
        1, setting="train_augment_copies", help="cpu mode: speed/noise-perturbed copies per clip"
    )
    checkpoint_every: int = configurable(
        10, setting="train_checkpoint_every", help="steps between checkpoints (and validations)"
    )
    # benchmarks/results/demo_training_defaults_salts012.md: through five rounds without a
    # slice (its sentences trained on, the last step kept) salts 1, 0 and 2 end at 9.7%,
    # 8.1% and 10.5% on unseen sentences and voices, against 14.4%, 15.4% and 15.4% with
    # 0.15 of the sentences held out to pick the step; the gate refuses a last step that
    # overfits.
    validation_fraction: float = configurable(
        0.0,
        setting="train_validation_fraction",
        help="share of the training sentences kept out to pick the best step",
    )
    # benchmarks/results/training_ablation_unseen47.md: on 34 sentences the best validation
    # loss of ~5 sentences kept step 20 of 33 (17.8% on unseen voices); all 39 steps without a
    # slice read them at 9.3%; from 0.75 on, 12.3%. Through the rounds the later step read
    # the users' own held-out sentences worse (demo_training_validate_late_salt1.md), so
    # 0: for installations whose new voices are their users.
    validation_start: float = configurable(
        0.0,
        setting="train_validation_start",
        help="share of the step budget before the first validation (the kept step is later)",
        ge=0.0,
    )
    min_validation_sentences: int = field(
        default=3,
        metadata={"help": "validation share under this many sentences: none, last step kept"},
    )
    early_stopping_patience: int = configurable(
        2,
        setting="train_early_stopping_patience",
        help="validations without improvement before stopping; 0 = off",
    )
    anchor_strength: float = configurable(
        0.0,
        setting="train_anchor_strength",
        help="L2 pull of trainable weights toward the start model (L2-SP)",
    )
    seed: int = field(default=0, metadata={"help": "random seed"})
    language: str = field(default="it", metadata={"help": "forced language"})
    task: str = field(default="transcribe", metadata={"help": "forced task"})
    threads: int = configurable(
        0, setting="train_threads", help="CPU threads for torch; 0 = default"
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneArguments:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, path: Path) -> FinetuneArguments:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


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
    # The step whose weights were kept (the best validation loss), and that loss.
    best_step: int | None = None
    best_validation_loss: float | None = None
    validation_clips: int = 0
    validation_sentences: int = 0
    # cpu mode: lower-encoder cache entries found from earlier runs, and computed now.
    encoder_cache_reused: int = 0
    encoder_cache_computed: int = 0
    encoder_cache_seconds: float = 0.0
    # WiSE-FT (``training.robust``): the interpolation kept, and the validation loss of each.
    wise_alpha: float | None = None
    wise_losses: dict[str, float] = field(default_factory=dict)
    # Checkpoint averaging (``training.averaging``): the steps averaged (fewer than two:
    # none), and the averaged weights' validation loss.
    averaged_steps: list[int] = field(default_factory=list)
    averaged_validation_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_dir"] = str(self.model_dir)
        return data

    as_dict = to_dict

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["model_dir"] = Path(values.get("model_dir", ""))
        return cls(**values)
