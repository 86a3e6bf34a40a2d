"""The one place that reads the environment: every setting of every process.

Values come from ``WHISPER_IT_*`` environment variables or a ``.env`` file. Library
packages (``model``, ``storage``, ``training``) never read settings: the composition
roots pass them the values they need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from model.media.links import YOUTUBE_HOSTS
from storage.split_policy import DEFAULT_EVAL_FRACTION, DEFAULT_MIN_EVAL_SENTENCES, SplitPolicy
from training.arguments import FinetuneArguments
from training.config import DEFAULT_RECENT_CLIPS, split_policy
from training.configurable import setting_fields
from training.gate_policy import GatePolicy

DEFAULT_API_URL = "https://api.telegram.org/bot"
DEFAULT_FILE_URL = "https://api.telegram.org/file/bot"
# What a local Bot API server lets a bot download (the cloud one: 20 MB).
LOCAL_MODE_MAX_FILE_BYTES = 2000 * 1024 * 1024
PACKAGED_BASE_MODEL = "packaged:whisper-base"
# The longest training interval: a longer one overflows the scheduler's dates.
SCHEDULE_MAX_HOURS = 24 * 366

Engine = Literal["ct2", "transformers"]
TaggerChoice = Literal["auto", "text2tags", "keywords", "off"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


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


def _policy_settings(*policies: type) -> type[BaseSettings]:
    """Settings fields for the configurable fields of ``policies`` (training.configurable)."""
    fields: dict[str, Any] = {}
    for policy in policies:
        for f in setting_fields(policy):
            fields[f.setting] = (f.annotation, Field(f.default, description=f.help, ge=f.ge))
    return create_model("PolicySettings", __base__=BaseSettings, **fields)


PolicySettings = _policy_settings(FinetuneArguments, GatePolicy)


class Settings(PolicySettings):  # type: ignore[misc,valid-type]
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
    webhook_listen: str = Field(
        "127.0.0.1",
        description="Address the webhook server binds (behind an HTTPS reverse proxy)",
    )
    webhook_port: int = Field(
        8443, ge=1, le=65535, description="Port the webhook server listens on"
    )
    webhook_path: str = Field("telegram", description="Path the webhook listens on")
    webhook_secret: SecretStr | None = Field(
        None, description="Secret Telegram sends with each webhook call (generated if unset)"
    )
    webhook_max_body_bytes: int = Field(
        1_048_576,
        ge=65_536,
        description="Largest webhook request body read (bytes); larger ones get 413",
    )

    # --- Storage --------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Database, audio, models, caches")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in DATA_DIR")
    retention_days: int = Field(30, ge=0, description="Days uncorrected audio is kept")
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
    beam_size: int = Field(5, ge=1, description="Beam search width (1 = greedy)")
    cpu_threads: int = Field(0, ge=0, description="0 = let the engine decide")

    # --- Limits ---------------------------------------------------------------------
    max_audio_seconds: float = Field(1800.0, gt=0, description="Longest audio accepted")
    min_audio_seconds: float = Field(0.3, ge=0, description="Shortest audio accepted")
    max_file_bytes: int = Field(
        20 * 1024 * 1024, ge=1, description="Largest file accepted (Telegram's bot download limit)"
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
    max_queued_jobs: int = Field(100, ge=1, description="Open jobs of all users together")
    max_pending_jobs_per_user: int = Field(3, ge=1, description="Open jobs per user")
    messages_per_minute: int = Field(10, ge=1, description="Requests per user per minute")
    max_correction_chars: int = Field(10_000, ge=1, description="Longest correction accepted")
    max_message_chars: int = Field(4096, ge=1, le=4096, description="Telegram's message limit")
    long_text_as_file_chars: int = Field(12_000, ge=1, description="Longer transcripts go as .txt")

    # --- decoding sandbox ---
    decode_sandbox: bool = Field(
        True, description="Decode media in a child process with memory, CPU and time limits"
    )
    decode_memory_mb: int = Field(
        1024, ge=256, description="Address-space limit of a decoder process, in MiB"
    )
    decode_seconds_per_audio_second: float = Field(
        2.0, ge=0, description="CPU and wall-clock seconds a decode may take per audio second"
    )
    decode_extra_seconds: float = Field(
        10.0, ge=1, description="Fixed CPU and wall-clock seconds a decode may take on top"
    )
    decode_pool_size: int = Field(1, ge=1, description="Warm decoder processes kept waiting")

    # --- Links ----------------------------------------------------------------------
    allowed_url_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Hosts allowed in addition to YouTube's"
    )
    download_timeout_seconds: float = Field(120.0, gt=0, description="Link download time limit")

    offline: bool = Field(
        False, description="Never contact the Hugging Face Hub (use local files and caches only)"
    )

    # --- Hashtags -------------------------------------------------------------------
    tagger: TaggerChoice = Field(
        "auto", description="auto (text2tags if loadable, else keywords), text2tags, keywords, off"
    )
    text2tags_model: str = Field("efederici/text2tags", description="Hub id or local folder")
    max_hashtags: int = Field(5, ge=0, description="Hashtags per transcript")
    tag_budget_seconds: float = Field(2.0, ge=0, description="Reply without tags if slower")

    # --- Training -------------------------------------------------------------------
    # The fine-tuning and gate knobs (WHISPER_IT_TRAIN_*, WHISPER_IT_GATE_*) are declared
    # on their policies, training.arguments.FinetuneArguments and training.gate.GatePolicy,
    # and come in through PolicySettings; these are the run's and the scheduler's own.
    train_max_minutes: float = Field(
        20.0, ge=0, description="Training steps stop after this long (caching apart); 0 = no limit"
    )
    train_replay_uncorrected: int = Field(
        0, ge=0, description="Recent uncorrected clips trained on with the sent transcript; 0 = off"
    )
    train_min_new_samples: int = Field(
        20, ge=0, description="The scheduler trains only with this many new corrections"
    )
    train_min_samples: int = Field(1, ge=1, description="Refuse to train with fewer samples")
    model_versions_kept: int = Field(
        3, ge=1, description="Earlier versions /rollback can return to; older weights deleted"
    )
    train_keep_refused: bool = Field(
        False, description="Keep refused candidates' models (/forget deletes them too)"
    )
    train_test_then_train: bool = Field(
        True, description="New sentences since the last run: judged on first, trained on next run"
    )
    train_schedule_hours: float = Field(
        24.0, ge=0, le=SCHEDULE_MAX_HOURS, description="Scheduler interval; 0 = off; a year at most"
    )
    train_schedule_cron: str | None = Field(None, description="Crontab; overrides the interval")
    eval_fraction: float = Field(
        DEFAULT_EVAL_FRACTION, ge=0, lt=1, description="Share of samples held out (keep it fixed)"
    )
    eval_min_sentences: int = Field(
        DEFAULT_MIN_EVAL_SENTENCES,
        ge=0,
        description="Sentences held out at least (the first ones all are), so the gate can "
        "judge from the first ~16 corrected sentences",
    )
    train_max_user_share: float = Field(
        0.8, gt=0, le=1, description="Most of the training words one user may hold; 1 = off"
    )
    eval_general_set: str = Field(
        "packaged",
        description="General set the gate judges against forgetting: packaged (the set "
        "shipped with whisper-it, read-only), a TSV (audio<TAB>text) or audiofolder path, "
        "or none (off)",
    )
    eval_recent_clips: int = Field(
        DEFAULT_RECENT_CLIPS,
        ge=0,
        description="Recent uncorrected clips the gate checks for forgetting; 0 = off",
    )
    train_base_corpus: Path | None = Field(
        None, description="Prepared base corpus (audiofolder) replayed against forgetting"
    )
    train_replay_ratio: float = Field(0.5, ge=0, description="Base clips per user sample")
    hub_repo_id: str | None = Field(None, description="Push promoted versions to this repo")
    hub_token: SecretStr | None = None
    # --- Learning loop (issue 19 B) ---
    train_start_from: Literal["base", "serving"] = Field(
        "base",
        description="base: every run from the base model; serving (benchmarks only) chains",
    )
    # --- Confirmations (issue 19: the "✅ Giusto" button) ---
    confirm_button: bool = Field(
        True,
        description="Put a '✅ Giusto' button under transcripts of clips training can use: "
        "a press stores the transcript as a confirmed label",
    )
    # --- end Training ---------------------------------------------------------------

    # --- Local Bot API server ----------------------------------------------------------
    telegram_local_mode: bool = Field(
        False,
        description="The Bot API URLs point at a local `telegram-bot-api --local` server "
        "sharing this machine's files: files up to 2000 MB are read from its folder "
        "(the file size limit rises to that unless WHISPER_IT_MAX_FILE_BYTES is set)",
    )

    @model_validator(mode="after")
    def _local_mode_limit(self) -> Settings:
        if self.telegram_local_mode and "max_file_bytes" not in self.model_fields_set:
            self.max_file_bytes = LOCAL_MODE_MAX_FILE_BYTES
        return self

    # --- Personal vocabulary (issue 21) ---
    personal_vocabulary: bool = Field(
        False,
        description="A user's corrected words bias that user's next transcripts "
        "(faster-whisper hotwords; /vocabolario shows and clears them). Off by default: "
        "it fixed 42% of the rare words but changed 3 of 14 transcripts that were right "
        "(benchmarks/results/personal_vocabulary.md)",
    )
    personal_vocabulary_size: int = Field(
        30,
        ge=1,
        le=100,
        description="At most this many of a user's corrected words are kept and used "
        "(the most recent)",
    )

    # --- Logging --------------------------------------------------------------------
    log_level: LogLevel = Field("INFO", description="DEBUG, INFO, WARNING, ERROR")

    # --- Operations (health, metrics, logs, restarts, YouTube from a server) ---------
    log_format: Literal["text", "json"] = Field(
        "text", description="text, or json: one JSON object per line (time, level, logger, ...)"
    )
    http_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve /healthz, /readyz and /metrics on this port (unset: off); never "
        "the webhook's port",
    )
    http_listen: str = Field(
        "127.0.0.1", description="Address the /healthz, /readyz, /metrics server binds"
    )
    worker_id: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        description="Name of this process's job leases, unique among live processes; a "
        "restart takes its jobs back at once (default: host:role:slot)",
    )
    ytdlp_cookies_file: Path | None = Field(
        None,
        description="cookies.txt (Netscape format) of a browser signed in to YouTube, for "
        "servers YouTube asks to prove they are not a bot; given to yt-dlp for YouTube links "
        "only, never logged",
    )

    @field_validator("train_wise_alphas", check_fields=False)
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

    @field_validator("train_schedule_cron")
    @classmethod
    def _crontab(cls, value: str | None) -> str | None:
        """Read as the scheduler will, so a bad crontab stops the start at once."""
        from training.scheduler import build_trigger

        build_trigger(interval_hours=0, cron=value)  # ScheduleError is a ValueError
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("eval_general_set", mode="before")
    @classmethod
    def _general_set_path(cls, value: object) -> object:
        return str(value) if isinstance(value, Path) else value

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
    def split(self) -> SplitPolicy:
        """The installation's one train/held-out split, for training and every report."""
        return split_policy(self.eval_fraction, self.eval_min_sentences)

    @property
    def url_hosts(self) -> frozenset[str]:
        return YOUTUBE_HOSTS | frozenset(self.allowed_url_hosts)

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.admin_ids
