"""Model versions on disk, and the ``CURRENT`` pointer the bot serves from.

Layout under ``root`` (the bot's ``models_dir``)::

    CURRENT                  one line: the served version's name ("base" = the base model)
    versions/<name>/hf/      the transformers checkpoint (what the next training starts from)
    versions/<name>/ct2/     the CTranslate2 int8 export (what the bot serves)
    versions/<name>/metrics.json   evaluations, gate decision, parent version, training facts
    versions/<name>/README.md      a generated model card
    versions/<name>/trained_on.txt the audio hashes it was trained on (one a line)
    versions/<name>/FORGOTTEN      present once some of that audio was deleted by /forget

A version trained on audio a user later deleted (/forget) is never served again: its
hashes leave ``trained_on.txt``, ``FORGOTTEN`` is written, and ``set_current`` / ``rollback``
refuse it (the one serving keeps serving until the next promotion replaces it).

A version folder is written completely under a temporary name and renamed into place;
``CURRENT`` is switched with ``os.replace``. A reader therefore sees the old model or the
new one, never half of one (a trainer killed mid-install leaves only a ``.<name>.tmp-*``
folder, which its next start deletes: ``remove_partial_installs``). A version's weights
(``hf/``, ``ct2/``) are deleted once nothing may serve them again (``prune``): a forgotten
version once it no longer serves, and after a promotion every version further back than
the kept rollback steps; its metrics, card and hash list stay, for the history /models
and /wer show.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.asr import convert

log = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
VERSIONS_DIR = "versions"
HF_SUBDIR = "hf"
CT2_SUBDIR = "ct2"
METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
BASE_VERSION = "base"
TRAINED_ON_FILE = "trained_on.txt"
FORGOTTEN_FILE = "FORGOTTEN"
# Held while versions are marked forgotten (``lock``).
LOCK_FILE = ".lock"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# ``install`` writes a version under ``versions/.<name>.tmp-<random>`` before its rename.
_PARTIAL = re.compile(r"\.[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.tmp-[^/]+")


class RegistryError(Exception):
    """A version is missing or malformed, or a pointer change is impossible."""


class NothingToRollBack(RegistryError):
    """The base model serves: there is no earlier version to go back to."""


class VersionError(RegistryError):
    """Something wrong with the version ``name`` (the user interface words it)."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


class VersionMissing(VersionError):
    """No folder for the version."""


class VersionUnusable(VersionError):
    """An invalid name, or no CTranslate2 export to serve."""


class VersionForgotten(VersionError):
    """Trained on audio deleted by /forget (its message is the Italian explanation)."""


@dataclass(frozen=True)
class VersionFolder:
    name: str
    path: Path
    metrics: dict[str, Any]

    @property
    def hf_dir(self) -> Path:
        return self.path / HF_SUBDIR

    @property
    def ct2_dir(self) -> Path:
        return self.path / CT2_SUBDIR

    @property
    def parent(self) -> str | None:
        """The version it was trained from (``"base"`` for the base model)."""
        parent = self.metrics.get("parent")
        return str(parent) if parent else None

    @property
    def forgotten(self) -> bool:
        """Trained on audio that a user later deleted: never to be served again."""
        return (self.path / FORGOTTEN_FILE).is_file()

    def trained_on(self) -> set[str]:
        try:
            text = (self.path / TRAINED_ON_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return set()
        return {line.strip() for line in text.splitlines() if line.strip()}


class ModelRegistry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- reading ---------------------------------------------------------------------

    def current_name(self) -> str:
        """The served version's name; ``"base"`` when nothing was ever promoted."""
        try:
            name = (self.root / CURRENT_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return BASE_VERSION
        return name or BASE_VERSION

    def current(self) -> VersionFolder | None:
        """The served version's folder, or None while the base model serves."""
        name = self.current_name()
        return None if name == BASE_VERSION else self.get(name)

    def get(self, name: str) -> VersionFolder:
        path = self._version_path(name)
        if not path.is_dir():
            raise VersionMissing(f"model version {name!r} does not exist", name=name)
        try:
            metrics = json.loads((path / METRICS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            metrics = {}
        return VersionFolder(name=name, path=path, metrics=metrics)

    def versions(self) -> list[VersionFolder]:
        """Every installed version, oldest first (by install time)."""
        folder = self.root / VERSIONS_DIR
        if not folder.is_dir():
            return []
        found = [
            self.get(item.name)
            for item in folder.iterdir()
            if item.is_dir() and _NAME.fullmatch(item.name)
        ]
        return sorted(found, key=lambda v: (v.metrics.get("created_at", ""), v.name))

    # --- writing ---------------------------------------------------------------------

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Held by whoever marks versions forgotten (/forget in any bot process or thread,
        a trainer withdrawing its version): each reads a version's list and writes it
        back, and one at a time none writes back a hash the other removed."""
        return file_lock(self.root / LOCK_FILE)

    def install(
        self,
        name: str,
        *,
        hf_dir: Path,
        ct2_dir: Path,
        metrics: dict[str, Any],
        card: str,
        move: bool = False,
        trained_on: Collection[str] = (),
    ) -> VersionFolder:
        """Add a complete version folder atomically (it does not become current)."""
        target = self._version_path(name)
        if target.exists():
            raise RegistryError(f"model version {name!r} already exists")
        if not convert.is_hf_dir(hf_dir) or not convert.is_ct2_dir(ct2_dir):
            raise RegistryError(f"{name!r}: need an HF checkpoint and a CTranslate2 export")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=target.parent))
        try:
            for source, sub in ((hf_dir, HF_SUBDIR), (ct2_dir, CT2_SUBDIR)):
                if move:
                    shutil.move(str(source), tmp / sub)
                else:
                    shutil.copytree(source, tmp / sub)
            (tmp / METRICS_FILE).write_text(
                json.dumps(metrics, indent=2, sort_keys=True, default=str) + "\n", "utf-8"
            )
            (tmp / CARD_FILE).write_text(card, encoding="utf-8")
            (tmp / TRAINED_ON_FILE).write_text(
                "".join(f"{h}\n" for h in sorted(trained_on)), encoding="utf-8"
            )
            _fsync_tree(tmp)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get(name)

    def set_current(self, name: str) -> None:
        """Point ``CURRENT`` at ``name`` (or ``"base"``) with one atomic rename."""
        if name != BASE_VERSION:
            version = self.get(name)
            if version.forgotten:
                raise VersionForgotten(_forgotten_message(name), name=name)
            if not convert.is_ct2_dir(version.ct2_dir):
                raise VersionUnusable(
                    f"model version {name!r} has no CTranslate2 export", name=name
                )
        self.root.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.root / CURRENT_FILE, name + "\n")

    def rollback(self) -> str:
        """Serve the current version's parent again; returns its name. When ``CURRENT``
        names no installed version (its folder is gone), the base model serves already
        (``bot.bootstrap.current_model_spec``): the pointer is set to it, to match."""
        try:
            current = self.current()
        except (VersionMissing, VersionUnusable):  # gone, or no valid name at all
            self.set_current(BASE_VERSION)
            return BASE_VERSION
        if current is None:
            raise NothingToRollBack("the base model is serving: there is nothing to roll back")
        parent = current.parent or BASE_VERSION
        self.set_current(parent)
        return parent

    def mark_forgotten(self, audio_hashes: Collection[str]) -> list[str]:
        """/forget: every version trained on any of ``audio_hashes`` loses those hashes
        from its list and is marked never to be served again; returns their names."""
        gone = {h.lower() for h in audio_hashes}
        marked = []
        failure: OSError | None = None
        for version in self.versions():
            try:
                if version.trained_on() & gone:
                    _mark(version, gone)
                    marked.append(version.name)
            except OSError as exc:  # the next versions must be marked all the same
                log.error("could not mark %s as forgotten: %s", version.name, exc)
                failure = failure or exc
        if failure is not None:
            raise failure
        return marked

    def remove_partial_installs(self) -> list[str]:
        """Delete the temporary folders of installs that never finished (a trainer killed
        mid-install leaves one, weights included, that ``versions()`` does not list, so no
        /forget or prune would ever reach it); returns their names. Only a trainer holding
        the training lease may call this: installs run under that lease alone, so no live
        install is writing any of them."""
        folder = self.root / VERSIONS_DIR
        if not folder.is_dir():
            return []
        removed = []
        for item in folder.iterdir():
            if item.is_dir() and _PARTIAL.fullmatch(item.name):
                shutil.rmtree(item)
                log.info("deleted %s, left by an install that never finished", item.name)
                removed.append(item.name)
        return sorted(removed)

    def prune(self, *, keep: int | None = None) -> list[str]:
        """Delete the weights nothing may serve again: those of every forgotten version but
        the one serving, and with ``keep`` those of every version but the serving one and
        the ``keep`` it would roll back to, one after another. The versions pruned."""
        current = self.current_name()
        rollback_targets = self._ancestors(current, keep) if keep is not None else None
        pruned = []
        for version in self.versions():
            if version.name == current or not (
                version.forgotten
                or (rollback_targets is not None and version.name not in rollback_targets)
            ):
                continue
            weights = [version.path / sub for sub in (HF_SUBDIR, CT2_SUBDIR)]
            if any(path.exists() for path in weights):
                for path in weights:
                    shutil.rmtree(path, ignore_errors=True)
                pruned.append(version.name)
        return pruned

    def _ancestors(self, name: str, depth: int) -> set[str]:
        found: set[str] = set()
        while len(found) < depth and name != BASE_VERSION:
            try:
                name = self.get(name).parent or BASE_VERSION
            except RegistryError:
                break
            if name == BASE_VERSION or name in found:
                break
            found.add(name)
        return found

    def withdraw(self, name: str, audio_hashes: Collection[str]) -> None:
        """Mark ``name`` as ``mark_forgotten`` would, whatever its list holds: a /forget
        reached its run while the version was being installed, under a name it cannot see."""
        with self.lock():
            _mark(self.get(name), {h.lower() for h in audio_hashes})

    def _version_path(self, name: str) -> Path:
        if not _NAME.fullmatch(name) or name == BASE_VERSION:
            raise VersionUnusable(f"invalid model version name {name!r}", name=name)
        return self.root / VERSIONS_DIR / name


def _forgotten_message(name: str) -> str:
    return (
        f"la versione {name} è stata addestrata anche su dati che un utente ha poi cancellato "
        "con /forget, quindi non la userò più. Il modello in servizio resta finché il "
        "prossimo addestramento (sempre dal modello di base) non ne promuove uno nuovo."
    )


def _mark(version: VersionFolder, gone: set[str]) -> None:
    write_text_atomically(version.path / FORGOTTEN_FILE, "trained on audio deleted by /forget\n")
    kept = version.trained_on() - gone
    write_text_atomically(version.path / TRAINED_ON_FILE, "".join(f"{h}\n" for h in sorted(kept)))


def write_text_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename. The temporary file gets a unique name
    beside it: two writers (two /forget threads, the bot and the trainer) never rename or
    overwrite each other's, and one that fails removes its own."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (made if missing): threads and processes
    alike wait for it. Released when the file closes, so a killed holder frees it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _fsync_tree(root: Path) -> None:
    """Flush every file to disk before the rename makes the folder visible."""
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
