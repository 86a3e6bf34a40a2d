"""A run's fixed inputs, decided at its first start and reused when it resumes.

Three manifests (TSV, ``model.asr.tsv``'s format, absolute paths into the audio store) are
written into the run folder:

* ``train.tsv``: the train side of the stored corrections (plus replayed base corpus);
* ``heldout.tsv``: the held-out corrections *whose sentence is not on the train side*.
  ``storage.samples`` decides the split; clips of a sentence that also appears on the
  train side are left out here as well, so the gate always measures unseen sentences,
  whatever the split did (the count is reported). Test-then-train (``test_then_train``,
  on by default): train-side sentences whose corrections *all* arrived since the last
  finished run are held out too, this run only: the gate of a small installation judges
  on its 8-sentence held-out floor *plus* everything new, and the next run trains on
  them. Counted from the last run, promoted or not (from the serving version's run, a
  stalled installation would hold out, and never train on, all it learnt since);
* ``recent.tsv``: recent audio nobody corrected, with the transcript users were given as
  its reference (the gate's default forgetting guard, ``training.gate``). Other recent
  uncorrected clips (never the same ones) join ``train.tsv`` with that transcript as their
  target: replay against forgetting, so the candidate keeps doing what the serving model
  did for the users who had nothing to correct.

Privacy: these manifests hold correction texts. A finished run deletes them, keeping only
counts and metrics (``delete_text_manifests``); cache indexes of older runs, which held the
texts as token ids, go too (today's encoder cache, ``training.encoder_cache``, holds no
text; /forget deletes its entries through ``training.forgetting``). While a run is open
(running or waiting to resume), the privacy code calls ``scrub_run_manifests`` with the
audio hashes of a user who used ``/forget``: their rows leave every manifest, so a resume
trains without that audio. A process already training keeps what it loaded; the
run is then marked (``training.forgetting``) and does not promote its model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from model.asr.normalize import normalize_text
from model.asr.registry import file_lock, write_text_atomically
from training.data import Example, read_manifest, replay_mix

SNAPSHOT_FILE = "snapshot.json"
TRAIN_MANIFEST = "train.tsv"
HELDOUT_MANIFEST = "heldout.tsv"
RECENT_MANIFEST = "recent.tsv"
TEXT_MANIFESTS = (TRAIN_MANIFEST, HELDOUT_MANIFEST, RECENT_MANIFEST)
# In a run folder: held while a manifest is read and written back (``_rewrite``).
MANIFEST_LOCK = ".manifests.lock"
# Files under a run folder that hold texts (as token ids): dropped with the manifests.
TEXT_CACHE_NAMES = ("encoder_cache.json", "validation_cache.json")
FLAC_SUFFIX = ".flac"
# Recent clips longer than this are left out: the guard wants many short clips, cheaply.
RECENT_MAX_SECONDS = 30.0
# The recent set is sampled from the newest this-many-times-its-size uncorrected clips.
RECENT_WINDOW = 10


class SnapshotError(Exception):
    """The run has too little data to start."""


@dataclass(frozen=True)
class Snapshot:
    start_model: str
    start_hf_dir: str
    samples_used: int
    max_correction_id: int | None
    train_clips: int
    heldout_clips: int
    heldout_shared_sentences: int
    recent_clips: int
    replayed_uncorrected: int = 0
    # Held-out clips that are train-side corrections new since the last run (test-then-train).
    fresh_clips: int = 0
    # The version serving when the run started: the one the candidate replaces.
    replaces: str = "base"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        data = json.loads(text)
        values = {k: data.get(k, 0) for k in cls.__dataclass_fields__}
        # Before every run started from the base model, the start model was the served one.
        values["replaces"] = data.get("replaces") or data.get("start_model") or "base"
        return cls(**values)


def take_snapshot(
    config: Any, database: Any, *, start_model: str, start_hf_dir: Path, replaces: str = "base"
) -> Snapshot:
    """List the data and write the manifests (first start), or reuse them (resume)."""
    path = config.run_dir / SNAPSHOT_FILE
    if path.is_file():
        return Snapshot.from_json(path.read_text(encoding="utf-8"))
    from storage.audio_store import AudioStore
    from storage.samples import cap_user_words
    from training.data import examples_from_samples

    listed, heldout, pool, cutoff = _listed(config, database)
    train, fresh = hold_out_fresh(
        listed, cutoff if config.test_then_train else None, min_train=config.min_train_samples
    )
    guard, replay = split_uncorrected(
        pool, guard=config.recent_eval_clips, replay=config.replay_uncorrected
    )
    store = AudioStore(Path(config.audio_dir))
    # No speaker may hold more than its share of the training words (issue 19).
    capped = cap_user_words(train, max_share=config.train_max_user_share, seed=config.run_id)
    train_examples = examples_from_samples(capped, store)
    if len(train_examples) < max(1, config.min_train_samples):
        raise SnapshotError(
            f"{len(train_examples)} training samples; at least {config.min_train_samples} needed"
        )
    if config.base_corpus:
        base = read_manifest(Path(config.base_corpus))
        train_examples = replay_mix(
            train_examples, base, ratio=config.replay_ratio, seed=config.run_id
        )
    recent_examples = _stored(guard, store)
    # Replay: audio nobody corrected, with the transcript users accepted as its target, so
    # the candidate keeps doing what the serving model did for everyone else.
    replay_examples = _stored(replay, store)
    train_examples = [*train_examples, *replay_examples]
    heldout_examples, shared = _unseen(examples_from_samples(heldout, store), train_examples)
    fresh_examples, shared_fresh = _unseen(examples_from_samples(fresh, store), train_examples)
    run_dir = config.run_dir
    write_manifest(run_dir / TRAIN_MANIFEST, train_examples)
    write_manifest(run_dir / HELDOUT_MANIFEST, [*heldout_examples, *fresh_examples])
    write_manifest(run_dir / RECENT_MANIFEST, recent_examples)
    snapshot = Snapshot(
        start_model=start_model,
        start_hf_dir=str(Path(start_hf_dir).resolve()),
        samples_used=len(train),
        # Newest on either side: fresh ones and held-out ones released later are not new then.
        max_correction_id=max((s.correction_id for s in (*listed, *heldout)), default=None),
        train_clips=len(train_examples),
        heldout_clips=len(heldout_examples) + len(fresh_examples),
        heldout_shared_sentences=shared + shared_fresh,
        recent_clips=len(recent_examples),
        replayed_uncorrected=len(replay_examples),
        fresh_clips=len(fresh_examples),
        replaces=replaces,
    )
    write_text_atomically(path, snapshot.to_json())
    return snapshot


def hold_out_fresh(
    train: Sequence[Any], cutoff: int | None, *, min_train: int = 1
) -> tuple[list[Any], list[Any]]:
    """(train, fresh): test-then-train. ``fresh`` is the train-side samples of every
    sentence none of whose corrections the run of ``cutoff`` (the last finished run's
    newest correction) saw: new sentences, which this run's gate judges on and the next
    run trains on. A new clip of a sentence trained on before stays on the train side
    (it would not measure an unseen sentence). Nothing is held out without a previous
    run, or when fewer than ``min_train`` samples would be left to train on."""
    if cutoff is None:
        return list(train), []
    known = {s.group for s in train if s.correction_id <= cutoff}
    fresh = [s for s in train if s.group not in known]
    kept = [s for s in train if s.group in known]
    if not fresh or len(kept) < max(1, min_train):
        return list(train), []
    return kept, fresh


def _listed(
    config: Any, database: Any
) -> tuple[list[Any], list[Any], list[tuple[str, str]], int | None]:
    """The training and held-out samples, recent uncorrected clips (a per-user capped
    random sample) for the forgetting guard and replay, and the newest correction the last
    finished run saw."""
    from storage.samples import EVAL, TRAIN, last_trained_correction_id, list_samples

    with database.unit_of_work(read_only=True) as uow:
        train = list_samples(uow.session, TRAIN, policy=config.split)
        heldout = list_samples(uow.session, EVAL, policy=config.split)
        corrected = {s.audio_sha256 for s in (*train, *heldout)}
        pool = recent_uncorrected(
            uow.session,
            limit=config.recent_eval_clips + config.replay_uncorrected,
            exclude=corrected,
            max_user_share=config.gate.max_user_share,
            seed=config.run_id,
        )
        cutoff = last_trained_correction_id(uow.session)
    return train, heldout, pool, cutoff


def split_uncorrected(
    pool: Sequence[tuple[str, str]], *, guard: int, replay: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(guard set, replay set) from the newest-first ``pool``: interleaved, so both cover
    the same period, and never sharing a clip (the guard must measure unseen audio)."""
    if guard <= 0 or replay <= 0:
        return list(pool[:guard]) if guard > 0 else [], list(pool[:replay]) if replay > 0 else []
    return list(pool[0::2][:guard]), list(pool[1::2][:replay])


def _unseen(examples: list[Example], train: list[Example]) -> tuple[list[Example], int]:
    """The examples whose sentence the candidate never trained on, whatever brought it in
    (a correction, the base corpus, a replayed transcript), and how many were dropped."""
    seen = {normalize_text(e.text) for e in train}
    kept = [e for e in examples if normalize_text(e.text) not in seen]
    return kept, len(examples) - len(kept)


def _stored(items: Sequence[tuple[str, str]], store: Any) -> list[Example]:
    return [
        Example(key=sha, text=text, audio_path=store.path(sha))
        for sha, text in items
        if store.path(sha).is_file()
    ]


def recent_uncorrected(
    session: Any,
    *,
    limit: int,
    exclude: Collection[str] = (),
    max_user_share: float = 1.0,
    seed: int = 0,
) -> list[tuple[str, str]]:
    """(audio hash, transcript) of recent finished transcriptions nobody corrected, one
    per audio, short clips only: a seeded random sample of the newest
    ``RECENT_WINDOW`` x ``limit`` such clips, no user holding more than ``max_user_share``
    of it (one busy user cannot fill the gate's forgetting guard)."""
    if limit <= 0:
        return []
    import random

    from sqlalchemy import exists, select

    from storage.models import SOURCE_IMPORT, Correction, Transcription, TranscriptionStatus

    rows = session.execute(
        select(Transcription.audio_sha256, Transcription.text, Transcription.user_id)
        .where(
            Transcription.audio_sha256.is_not(None),
            Transcription.audio_purged_at.is_(None),
            Transcription.status == TranscriptionStatus.DONE,
            Transcription.source_kind != SOURCE_IMPORT,
            Transcription.audio_duration <= RECENT_MAX_SECONDS,
            Transcription.text != "",
            ~exists().where(Correction.transcription_id == Transcription.id),
        )
        .order_by(Transcription.id.desc())
        .limit(limit * RECENT_WINDOW)
    )
    window: dict[str, tuple[str, Any]] = {}
    for sha, text, user_id in rows:
        if sha not in exclude and sha not in window and normalize_text(text):
            window[sha] = (text, user_id)
    candidates = sorted(window.items())
    random.Random(seed).shuffle(candidates)
    cap = max(1, math.ceil(limit * max_user_share))
    per_user: dict[Any, int] = {}
    chosen: list[tuple[str, str]] = []
    for sha, (text, user_id) in candidates:
        if per_user.get(user_id, 0) >= cap:
            continue
        per_user[user_id] = per_user.get(user_id, 0) + 1
        chosen.append((sha, text))
        if len(chosen) >= limit:
            break
    return chosen


# --------------------------------------------------------------------------- manifests


def write_manifest(path: Path, examples: Sequence[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{Path(e.audio_path).resolve()}\t{' '.join(e.text.split())}" for e in examples]
    write_text_atomically(path, "".join(line + "\n" for line in lines))


def read_run_manifest(path: Path) -> list[Example]:
    """A run manifest's examples; rows whose audio is gone since (purged, forgotten) are
    dropped from the file first, and a missing or empty manifest is no examples."""
    if not path.is_file():
        return []
    _rewrite(path, lambda audio: audio.is_file())
    if not path.read_text(encoding="utf-8").strip():
        return []
    return read_manifest(path, allow_outside=True)


def scrub_run_manifests(runs_dir: Path, audio_hashes: Collection[str]) -> int:
    """Remove every row of ``audio_hashes`` from the manifests of every run under
    ``runs_dir``, and drop those runs' text-bearing caches; returns the rows removed.

    For the privacy code (``/forget``): finished runs keep no manifests at all."""
    forgotten = {h.lower() for h in audio_hashes}
    if not forgotten or not Path(runs_dir).is_dir():
        return 0
    removed = 0
    for run_dir in sorted(Path(runs_dir).iterdir()):
        hit = 0
        for name in TEXT_MANIFESTS:
            path = run_dir / name
            if path.is_file():
                hit += _rewrite(path, lambda audio: _audio_hash(audio) not in forgotten)
        if hit:
            _drop_text_caches(run_dir)
        removed += hit
    return removed


def delete_text_manifests(run_dir: Path) -> None:
    """What a finished run does: no correction text stays in its folder."""
    for name in TEXT_MANIFESTS:
        (run_dir / name).unlink(missing_ok=True)
        # A process killed while rewriting one leaves its temporary copy (texts too).
        for partial in run_dir.glob(f".{name}.*.tmp"):
            partial.unlink(missing_ok=True)
    _drop_text_caches(run_dir)


def _drop_text_caches(run_dir: Path) -> None:
    for name in TEXT_CACHE_NAMES:
        for path in run_dir.rglob(name):
            path.unlink(missing_ok=True)


def _audio_hash(audio: Path) -> str:
    name = audio.name
    return name[: -len(FLAC_SUFFIX)].lower() if name.endswith(FLAC_SUFFIX) else name.lower()


def _rewrite(path: Path, keep: Callable[[Path], bool]) -> int:
    """Keep the rows whose audio path passes ``keep``; returns the rows removed. The
    trainer (dropping purged audio) and a /forget (its user's rows) both rewrite a
    manifest: one at a time, neither writes back rows the other removed."""
    with file_lock(path.parent / MANIFEST_LOCK):
        lines = path.read_text(encoding="utf-8").removesuffix("\n").split("\n")  # as read_tsv
        kept = [line for line in lines if not line.strip() or keep(Path(line.split("\t", 1)[0]))]
        if len(kept) != len(lines):
            write_text_atomically(path, "".join(line + "\n" for line in kept))
    return len(lines) - len(kept)
