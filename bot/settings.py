"""The one place that reads the environment: every setting of every process.

Values come from ``WHISPER_IT_*`` environment variables or a ``.env`` file. Library
packages (``model``, ``storage``, ``training``) never read settings: the composition
roots pass them the values they need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model.media.links import YOUTUBE_HOSTS

DEFAULT_API_URL = "https://api.telegram.org/bot"
DEFAULT_FILE_URL = "https://api.telegram.org/file/bot"
PACKAGED_BASE_MODEL = "packaged:whisper-base"

Engine = Literal["ct2", "transformers"]
TaggerChoice = Literal["auto", "text2tags", "keywords", "off"]


def _split_list(value: object) -> object:
    """Accept ``"1, 2"`` as well as JSON lists for list settings."""
    if isinstance(value, str):
        value = value.strip()
        if value.startswith("["):
            import json

            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, int):
        return [value]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WHISPER_IT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- Telegram -------------------------------------------------------------------
    telegram_token: SecretStr | None = Field(None, description="Bot token from @BotFather")
    telegram_api_url: str = Field(DEFAULT_API_URL, description="Bot API base URL (token appended)")
    telegram_file_url: str = Field(DEFAULT_FILE_URL, description="Bot API file download URL")
    admin_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Telegram user ids allowed to run admin commands"
    )
    webhook_url: str | None = Field(None, description="Public HTTPS URL; enables webhook mode")
    webhook_listen: str = Field("0.0.0.0", description="Address the webhook server binds")
    webhook_port: int = Field(8443, description="Port the webhook server listens on")
    webhook_path: str = Field("telegram", description="Path the webhook listens on")
    webhook_secret: SecretStr | None = Field(
        None, description="Secret Telegram sends with each webhook call (generated if unset)"
    )

    # --- Storage --------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Database, audio, models, caches")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in DATA_DIR")
    retention_days: int = Field(30, description="Days uncorrected audio is kept")
    model_cache_dir: Path | None = Field(
        None, description="Assembled/converted models; default DATA_DIR/cache"
    )

    # --- Model ----------------------------------------------------------------------
    base_model: str = Field(
        PACKAGED_BASE_MODEL, description="Hub id, local HF/CT2 folder, or packaged:whisper-base"
    )
    engine: Engine = Field("ct2", description="ct2 (faster-whisper) or transformers")
    device: str = Field("auto", description="auto, cpu or cuda")
    compute_type: str = Field("auto", description="CTranslate2 compute type; auto = int8 on CPU")
    language: str = Field("it", description="Forced transcription language")
    beam_size: int = Field(5, description="Beam search width (1 = greedy)")
    cpu_threads: int = Field(0, description="0 = let the engine decide")

    # --- Limits ---------------------------------------------------------------------
    max_audio_seconds: float = Field(1800.0, description="Longest audio accepted")
    min_audio_seconds: float = Field(0.3, description="Shortest audio accepted")
    max_file_bytes: int = Field(
        20 * 1024 * 1024, description="Largest file accepted (Telegram's bot download limit)"
    )
    workers: int = Field(
        1,
        ge=0,
        description="Transcription workers in this process (0: a front that only accepts "
        "jobs, answered by `whisper-it worker` processes)",
    )
    batch_size: int = Field(
        8, ge=1, description="Short voice notes decoded together in one model call (1 = off)"
    )
    batch_wait_ms: float = Field(
        50.0, ge=0, description="How long a worker waits for a burst to fill a batch"
    )
    lease_seconds: float = Field(
        60.0, gt=0, description="A claimed job returns to the queue if its worker is silent"
    )
    worker_poll_seconds: float = Field(
        1.0, gt=0, description="How often an idle worker looks for new jobs"
    )
    max_queued_jobs: int = Field(100, description="Open jobs of all users together")
    max_pending_jobs_per_user: int = Field(3, description="Open jobs per user")
    messages_per_minute: int = Field(10, description="Requests per user per minute")
    max_correction_chars: int = Field(10_000, description="Longest correction accepted")
    max_message_chars: int = Field(4096, description="Telegram's message limit")
    long_text_as_file_chars: int = Field(12_000, description="Longer transcripts go as .txt")

    # --- Links ----------------------------------------------------------------------
    allowed_url_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts allowed in addition to YouTube's"
    )
    download_timeout_seconds: float = Field(120.0, description="Link download time limit")

    offline: bool = Field(
        False, description="Never contact the Hugging Face Hub (use local files and caches only)"
    )

    # --- Hashtags -------------------------------------------------------------------
    tagger: TaggerChoice = Field(
        "auto", description="auto (text2tags if loadable, else keywords), text2tags, keywords, off"
    )
    text2tags_model: str = Field("efederici/text2tags", description="Hub id or local folder")
    max_hashtags: int = Field(5, description="Hashtags per transcript")
    tag_budget_seconds: float = Field(2.0, description="Reply without tags if slower")

    # --- Training -------------------------------------------------------------------
    # (owned by training/ and bot/training_control.py; defaults measured on a 2-core CPU)
    train_mode: Literal["auto", "cpu", "gpu"] = Field(
        "auto", description="auto = gpu when CUDA is available, else cpu"
    )
    # Every run trains from the base model; its step budget is train_max_epochs passes
    # over the training clips, so it grows with the data (issue 19).
    train_max_steps: int = Field(0, description="Cap on optimizer steps per run; 0 = none")
    train_max_epochs: float = Field(
        3.0, description="Step budget: passes over the training clips (grows with the data)"
    )
    train_max_minutes: float = Field(
        20.0, description="Training steps stop after this long (caching apart); 0 = no limit"
    )
    train_learning_rate: float = 5e-5
    train_warmup_ratio: float = Field(0.5, description="Share of the steps warming up")
    train_batch_size: int = 8
    train_gradient_accumulation: int = 1
    train_encoder_layers: int = Field(
        4, description="cpu mode: top encoder layers trained over cached lower layers"
    )
    # benchmarks/results/training_ablation.md: with the decoder's language model kept and
    # 5e-5, unseen sentences and voices 12.5% -> 10.5% WER, festival 10.5% (base 11.7%).
    train_decoder: Literal["all", "cross_attention"] = Field(
        "cross_attention",
        description="cpu mode: decoder weights trained (cross_attention keeps its LM)",
    )
    train_augment_copies: int = Field(1, description="cpu mode: speed/noise copies per clip")
    train_checkpoint_every: int = Field(
        10, description="Steps between resumable checkpoints and validations"
    )
    train_validation_fraction: float = Field(
        0.15, description="Share of training sentences kept out to pick the best step"
    )
    train_early_stopping_patience: int = Field(
        2, description="Validations without improvement before training stops; 0 = off"
    )
    train_anchor_strength: float = Field(
        0.0, description="L2 pull toward the start model's weights (L2-SP); 0 = off"
    )
    train_replay_uncorrected: int = Field(
        0, description="Recent uncorrected clips trained on with the sent transcript; 0 = off"
    )
    train_threads: int = Field(0, description="torch CPU threads; 0 = torch's default")
    train_min_new_samples: int = Field(
        20, description="The scheduler trains only with this many new corrections"
    )
    train_min_samples: int = Field(1, description="Refuse to train with fewer samples")
    train_schedule_hours: float = Field(24.0, description="Scheduler interval; 0 = off")
    train_schedule_cron: str | None = Field(None, description="Crontab; overrides the interval")
    eval_fraction: float = Field(0.1, description="Share of samples held out (keep it fixed)")
    eval_general_set: Path | None = Field(
        None, description="Fixed general eval set: TSV (audio<TAB>text) or audiofolder"
    )
    eval_recent_clips: int = Field(
        32, description="Recent uncorrected clips the gate checks for forgetting; 0 = off"
    )
    gate_min_wer_improvement: float = Field(0.005, description="Absolute WER gain to promote")
    gate_confidence: float = Field(
        0.95, description="Paired-bootstrap confidence the held-out gain must reach"
    )
    gate_general_tolerance: float = Field(0.01, description="Allowed general-set WER loss")
    # Measured (benchmarks/results/demo_training.md): candidates no worse on different-
    # sounding speech still disagree with the transcripts users got on 19-30% of words, so
    # this guard is an alarm for collapse (loops, another language), not for small changes.
    gate_recent_tolerance: float = Field(
        0.40, description="Allowed change on recent uncorrected audio (vs what users saw)"
    )
    gate_max_insertion_rate: float = Field(
        0.2, description="Refuse candidates inserting more words per reference word (loops)"
    )
    gate_min_eval_sentences: int = Field(
        3, ge=2, description="Different sentences a set needs before the gate judges on it"
    )
    train_base_corpus: Path | None = Field(
        None, description="Prepared base corpus (audiofolder) replayed against forgetting"
    )
    train_replay_ratio: float = Field(0.5, description="Base clips per user sample")
    hub_repo_id: str | None = Field(None, description="Push promoted versions to this repo")
    hub_token: SecretStr | None = None
    # --- Learning loop (issue 19 B) ---
    train_start_from: Literal["base", "serving"] = Field(
        "base",
        description="base: every run from the base model; serving (benchmarks only) chains",
    )
    train_wise_alphas: str = Field(
        "",
        description="WiSE-FT: alphas (e.g. 0.5,0.75,1) tried on the validation split; empty = off",
    )
    train_dataloader_workers: int = Field(
        4, ge=0, description="gpu mode: DataLoader worker processes feeding the GPU"
    )
    # --- end Training ---------------------------------------------------------------

    # --- Logging --------------------------------------------------------------------
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING, ERROR")

    @field_validator("train_wise_alphas")
    @classmethod
    def _wise_alphas(cls, value: str) -> str:
        try:
            alphas = [float(part) for part in value.split(",") if part.strip()]
        except ValueError as exc:
            message = f"TRAIN_WISE_ALPHAS: numbers separated by commas, not {value!r}"
            raise ValueError(message) from exc
        if any(not 0.0 < a <= 1.0 for a in alphas):
            raise ValueError(f"TRAIN_WISE_ALPHAS: each alpha within (0, 1], not {value!r}")
        return value

    @field_validator("admin_ids", "allowed_url_hosts", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_list(value)

    @field_validator("allowed_url_hosts")
    @classmethod
    def _lower_hosts(cls, value: list[str]) -> list[str]:
        return [host.lower() for host in value]

    # --- Derived paths --------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'whisper-it.sqlite3').resolve()}"

    @property
    def audio_dir(self) -> Path:
        return self.data_dir / "audio"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "cache"

    @property
    def url_hosts(self) -> frozenset[str]:
        return YOUTUBE_HOSTS | frozenset(self.allowed_url_hosts)

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.admin_ids
