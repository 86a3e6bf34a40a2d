"""What /forget does to training: the data of runs not yet finished, the encoder cache,
and the model versions trained on the forgotten audio.

Every run trains from the base model on the corrections that exist when it starts, so a
version never inherits another version's data: once a user's audio is gone, the next
promoted version knows nothing of it. Until then:

* open runs lose the audio's rows from their manifests (``training.snapshot``); a run that
  had already loaded it is marked (``FORGOTTEN_RUN_FILE``) and refuses to promote;
* the persistent lower-encoder cache loses its entries (``training.encoder_cache``);
* every version trained on it is marked in the registry and never served again
  (``ModelRegistry.mark_forgotten``): /rollback refuses it with the reason; its weights are
  deleted (the serving one's once the next promotion replaces it);
* a refused candidate kept for inspection (``WHISPER_IT_TRAIN_KEEP_REFUSED``) is deleted.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from model.asr.registry import ModelRegistry, write_text_atomically
from training import encoder_cache
from training.finetune import FINAL_DIR
from training.snapshot import scrub_run_manifests

# In a run folder: the audio hashes the run trains on, and the mark of forgotten ones.
TRAINED_ON_FILE = "trained_on.txt"
FORGOTTEN_RUN_FILE = "FORGOTTEN"
# A finished run's refused candidate, kept only when an operator asks (``RunConfig``).
REFUSED_CT2 = "refused-ct2"
# In a run folder: the candidate's CTranslate2 export and the trained weights.
CANDIDATE_CT2 = "candidate-ct2"
TRAIN_SUBDIR = "train"


@dataclass(frozen=True)
class ForgetReport:
    manifest_rows: int
    cache_clips: int
    runs_marked: tuple[str, ...]
    versions_marked: tuple[str, ...]


def forget_training_audio(
    audio_hashes: Collection[str],
    *,
    runs_dir: Path,
    models_dir: Path,
    encoder_cache_dir: Path,
    in_progress: str | None,
) -> ForgetReport:
    """Apply one user's /forget to everything training holds (see the module doc).
    ``in_progress`` names the folder of the open run, if any: its trainer still needs its
    model folders (it refuses to promote instead); closed runs lose theirs."""
    gone = {h.lower() for h in audio_hashes}
    if not gone:
        return ForgetReport(0, 0, (), ())
    registry = ModelRegistry(Path(models_dir))
    # Two users' /forget (bot threads, bot processes) rewrite the same lists: one at a time.
    with registry.lock():
        rows = scrub_run_manifests(runs_dir, gone)
        runs = tuple(_mark_runs(Path(runs_dir), gone, in_progress=in_progress))
        cached = encoder_cache.forget_clips(Path(encoder_cache_dir), gone)
        versions = tuple(registry.mark_forgotten(gone))
        registry.prune()  # their weights, but the serving one's (it serves until replaced)
    return ForgetReport(rows, cached, runs, versions)


def record_trained_on(run_dir: Path, audio_paths: Iterable[Path]) -> set[str]:
    """Write the hashes of the run's training audio (stored clips only); returns them."""
    hashes = {_store_hash(Path(p)) for p in audio_paths} - {""}
    _write(Path(run_dir) / TRAINED_ON_FILE, hashes)
    return hashes


def trained_on(run_dir: Path) -> set[str]:
    path = Path(run_dir) / TRAINED_ON_FILE
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line}


def run_forgotten(run_dir: Path) -> bool:
    """The run trained on audio deleted since it started: its model must not be served."""
    return (Path(run_dir) / FORGOTTEN_RUN_FILE).is_file()


def _mark_runs(runs_dir: Path, gone: set[str], *, in_progress: str | None) -> Iterable[str]:
    if not runs_dir.is_dir():
        return
    for run_dir in sorted(runs_dir.iterdir()):
        hashes = trained_on(run_dir)
        if hashes & gone:
            (run_dir / FORGOTTEN_RUN_FILE).write_text("trained on audio deleted by /forget\n")
            shutil.rmtree(run_dir / REFUSED_CT2, ignore_errors=True)
            if run_dir.name != in_progress:  # a failed run's weights, left after export
                delete_closed_run_models(run_dir)
            _write(run_dir / TRAINED_ON_FILE, hashes - gone)
            yield run_dir.name


def delete_closed_run_models(run_dir: Path) -> None:
    """The weights a run left behind when it failed after training: its candidate and
    its final checkpoint (a promoted run's were moved into the registry; a kept refused
    candidate is ``REFUSED_CT2``, which only /forget deletes)."""
    shutil.rmtree(run_dir / CANDIDATE_CT2, ignore_errors=True)
    shutil.rmtree(run_dir / TRAIN_SUBDIR / FINAL_DIR, ignore_errors=True)


def _store_hash(path: Path) -> str:
    stem = path.name.split(".", 1)[0].lower()
    return stem if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem) else ""


def _write(path: Path, hashes: Collection[str]) -> None:
    write_text_atomically(path, "".join(f"{h}\n" for h in sorted(hashes)))
