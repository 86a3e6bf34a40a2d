"""Adversarial battery, part "labels": what a hostile user or a careless admin can do to the
training labels, on real SQLite after ``alembic upgrade head`` and through ``bot.cli.main``
in-process (the bot-driven cases are in tests/e2e/test_security_corrections.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bot import messages
from bot.commands.samples import csv_safe
from bot.corrections import UserIdError, parse_user_id
from storage import repository
from storage.audio_store import AudioRef, AudioStore
from storage.contributions import (
    list_contributions,
    list_quarantine,
    remove_user_contributions,
)
from storage.installation import split_salt
from storage.privacy import delete_user_data, job_exists
from storage.samples import add_labelled_sample, split_of
from storage.unit_of_work import Database
from tests.support.cli_commands import CliResult
from tests.support.labelling import SPLIT, labels_of, quarantine_of

AUTHOR, FORWARDER, THIRD = 11, 22, 33
TRUE_TEXT = "Il treno per Roma parte alle nove."
FALSE_TEXT = "Votate per me alle prossime elezioni."
CLIP_SAMPLES = 16_000  # 1 s


def _noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, CLIP_SAMPLES).astype(np.float32)


def _send(database: Database, ref: AudioRef, user_id: int) -> int:
    """``user_id`` sends the bot ``ref``'s audio: a transcription of their own."""
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, user_id)
        row = repository.add_transcription(
            uow.session, source_kind="voice", text="trascritto", user_id=user_id, audio=ref
        )
        uow.commit()
        return row.id


def _correct(database: Database, transcription_id: int, user_id: int, text: str) -> None:
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, user_id)
        repository.add_correction(
            uow.session, transcription_id=transcription_id, user_id=user_id, text=text
        )
        uow.commit()


def test_forwarded_copy_cannot_relabel_the_authors_clip(
    database: Database, store: AudioStore
) -> None:
    ref = store.put(_noise(1))
    _correct(database, _send(database, ref, AUTHOR), AUTHOR, TRUE_TEXT)
    _correct(database, _send(database, ref, FORWARDER), FORWARDER, FALSE_TEXT)
    assert labels_of(database) == []  # neither text is trained on or evaluated ...
    assert quarantine_of(database) == [(AUTHOR, FORWARDER)]  # ... until an admin decides


def test_forwarder_agreeing_with_the_author_changes_nothing(
    database: Database, store: AudioStore
) -> None:
    ref = store.put(_noise(2))
    _correct(database, _send(database, ref, AUTHOR), AUTHOR, TRUE_TEXT)
    _correct(database, _send(database, ref, FORWARDER), FORWARDER, TRUE_TEXT.upper() + "!!")
    assert labels_of(database) == [(AUTHOR, TRUE_TEXT)]
    assert quarantine_of(database) == []


def test_a_later_sender_alone_labels_nothing(database: Database, store: AudioStore) -> None:
    ref = store.put(_noise(3))
    _send(database, ref, AUTHOR)  # never corrected
    _correct(database, _send(database, ref, FORWARDER), FORWARDER, FALSE_TEXT)
    assert labels_of(database) == [] and quarantine_of(database) == []


def test_first_sender_who_is_an_attacker_is_quarantined_by_the_authors_correction(
    database: Database, store: AudioStore
) -> None:
    ref = store.put(_noise(4))
    _correct(database, _send(database, ref, FORWARDER), FORWARDER, FALSE_TEXT)
    assert labels_of(database) == [(FORWARDER, FALSE_TEXT)]
    _correct(database, _send(database, ref, AUTHOR), AUTHOR, TRUE_TEXT)
    assert labels_of(database) == []
    assert quarantine_of(database) == [(FORWARDER, AUTHOR)]


def test_correction_rows_of_someone_elses_transcription_are_ignored(
    database: Database, store: AudioStore
) -> None:
    """Defence in depth: a row the bot would refuse today (a group correction by another
    member, or one written before that rule) never labels a clip."""
    ref = store.put(_noise(5))
    transcription = _send(database, ref, AUTHOR)
    _correct(database, transcription, AUTHOR, TRUE_TEXT)
    _correct(database, transcription, FORWARDER, FALSE_TEXT)  # newer, and not the sender
    assert labels_of(database) == [(AUTHOR, TRUE_TEXT)]
    assert quarantine_of(database) == []


def test_attacker_re_correcting_many_times_still_only_quarantines(
    database: Database, store: AudioStore
) -> None:
    ref = store.put(_noise(6))
    _correct(database, _send(database, ref, AUTHOR), AUTHOR, TRUE_TEXT)
    copy = _send(database, ref, FORWARDER)
    for n in range(5):
        _correct(database, copy, FORWARDER, f"{FALSE_TEXT} {n}")
    with database.unit_of_work(read_only=True) as uow:
        (conflict,) = list_quarantine(uow.session, sentence_key=SPLIT.sentence_key)
    assert conflict.texts == (TRUE_TEXT, f"{FALSE_TEXT} 4")
    assert labels_of(database) == []


def test_removing_the_attackers_contributions_restores_the_authors_label(
    database: Database, store: AudioStore
) -> None:
    ref = store.put(_noise(7))
    _correct(database, _send(database, ref, AUTHOR), AUTHOR, TRUE_TEXT)
    _correct(database, _send(database, ref, FORWARDER), FORWARDER, FALSE_TEXT)
    _correct(database, _send(database, store.put(_noise(8)), FORWARDER), FORWARDER, "Mio.")
    with database.unit_of_work() as uow:
        removed = remove_user_contributions(uow.session, FORWARDER, sentence_key=SPLIT.sentence_key)
        uow.commit()
    assert (removed.corrections, removed.samples, removed.quarantined) == (2, 1, 1)
    assert labels_of(database) == [(AUTHOR, TRUE_TEXT)]
    assert quarantine_of(database) == []


def test_contributions_are_counted_per_user(database: Database, store: AudioStore) -> None:
    for seed in range(3):
        _correct(database, _send(database, store.put(_noise(10 + seed)), AUTHOR), AUTHOR, "a")
    shared = store.put(_noise(20))
    _correct(database, _send(database, shared, THIRD), THIRD, TRUE_TEXT)
    _correct(database, _send(database, shared, FORWARDER), FORWARDER, FALSE_TEXT)
    with database.unit_of_work(read_only=True) as uow:
        rows = {
            c.user_id: (c.samples, c.quarantined, c.corrections, round(c.seconds))
            for c in list_contributions(uow.session, policy=SPLIT)
        }
    assert rows == {AUTHOR: (3, 0, 3, 3), THIRD: (0, 1, 1, 0), FORWARDER: (0, 1, 1, 0)}


def test_forget_hands_ownership_to_the_next_sender(database: Database, store: AudioStore) -> None:
    ref = store.put(_noise(30))
    _correct(database, _send(database, ref, AUTHOR), AUTHOR, TRUE_TEXT)
    _correct(database, _send(database, ref, FORWARDER), FORWARDER, FALSE_TEXT)
    with database.unit_of_work() as uow:
        delete_user_data(uow.session, store, AUTHOR)
        uow.commit()
    # The audio is now only the forwarder's: theirs to label, like anything they send.
    assert labels_of(database) == [(FORWARDER, FALSE_TEXT)]
    assert store.exists(ref.sha256)


def test_an_import_cannot_silently_relabel_a_users_clip(
    database: Database, store: AudioStore
) -> None:
    ref = store.put(_noise(40))
    _correct(database, _send(database, ref, AUTHOR), AUTHOR, TRUE_TEXT)
    with database.unit_of_work() as uow:
        assert add_labelled_sample(uow.session, audio=ref, text=FALSE_TEXT) == "added"
        uow.commit()
    assert labels_of(database) == [] and quarantine_of(database) == [
        (AUTHOR, repository.IMPORT_USER_ID)
    ]


def test_the_split_cannot_be_predicted_without_the_installations_salt(tmp_path: Path) -> None:
    """Two installations holding the same sentences put different ones on the held-out
    side: the public code and the text alone do not tell an attacker where a clip goes."""
    sentences = [f"frase di prova {n}" for n in range(400)]
    sides = []
    for name in ("one", "two"):
        database = Database.open(f"sqlite:///{tmp_path / name / 'db.sqlite3'}")
        with database.unit_of_work(read_only=True) as uow:
            salt = split_salt(uow.session)
        database.close()
        sides.append([split_of(text, salt=salt, policy=SPLIT) for text in sentences])
    assert sides[0] != sides[1]


def test_job_deleted_by_forget_is_no_longer_wanted(database: Database, store: AudioStore) -> None:
    from storage import jobs

    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, AUTHOR)
        job = jobs.enqueue_job(uow.session, kind="t", payload={}, user_id=AUTHOR)
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        assert job_exists(uow.session, job.id)
    with database.unit_of_work() as uow:
        assert delete_user_data(uow.session, store, AUTHOR).jobs == 1
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        assert not job_exists(uow.session, job.id)


HOSTILE_IDS: list[tuple[list[str], str]] = [
    ([], messages.REMOVE_CONTRIBUTIONS_USAGE),
    (["1", "2"], messages.REMOVE_CONTRIBUTIONS_USAGE),
    (["abc"], messages.USER_ID_NOT_A_NUMBER.format(value="abc")),
    (["1e5"], messages.USER_ID_NOT_A_NUMBER.format(value="1e5")),
    (["0x10"], messages.USER_ID_NOT_A_NUMBER.format(value="0x10")),
    (["١٢٣"], messages.USER_ID_NOT_A_NUMBER.format(value="١٢٣")),
    (["1_000"], messages.USER_ID_NOT_A_NUMBER.format(value="1_000")),
    (["<b>1</b>"], messages.USER_ID_NOT_A_NUMBER.format(value="<b>1</b>")),
    (["9" * 40], messages.USER_ID_TOO_BIG),
    (["9" * 5000], messages.USER_ID_TOO_BIG),
    ([str(2**52 + 1)], messages.USER_ID_TOO_BIG),
    (["-5"], messages.USER_ID_NOT_POSITIVE),
    (["0"], messages.USER_ID_NOT_POSITIVE),
    (["-0"], messages.USER_ID_NOT_POSITIVE),
]


@pytest.mark.parametrize(
    ("args", "expected"), HOSTILE_IDS, ids=[repr(args)[:24] for args, _ in HOSTILE_IDS]
)
def test_hostile_user_ids_are_refused_with_a_reason(args: list[str], expected: str) -> None:
    with pytest.raises(UserIdError) as refused:
        parse_user_id(args)
    assert str(refused.value) == expected


def test_a_long_non_numeric_id_is_echoed_shortened() -> None:
    with pytest.raises(UserIdError) as refused:
        parse_user_id(["x" * 3000])
    assert str(refused.value) == messages.USER_ID_NOT_A_NUMBER.format(value="x" * 20 + "…")


def test_plausible_user_ids_are_read() -> None:
    assert [parse_user_id([v]) for v in ("1", "+42", " 007 ", str(2**52))] == [1, 42, 7, 2**52]


def _one_line_error(result: CliResult, message: str) -> None:
    assert result.code == 1
    assert result.err == f"whisper-it: {message}\n"
    assert "Traceback" not in result.out + result.err


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("abc", messages.USER_ID_NOT_A_NUMBER.format(value="abc")),
        ("-5", messages.USER_ID_NOT_POSITIVE),
        ("0", messages.USER_ID_NOT_POSITIVE),
        ("9" * 10_000, messages.USER_ID_TOO_BIG),
    ],
    ids=["letters", "negative", "zero", "10000-digits"],
)
def test_cli_remove_user_refuses_hostile_ids(cli, raw: str, message: str) -> None:
    _one_line_error(cli("samples", "remove-user", raw), message)


def _wav(path: Path, samples: np.ndarray, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, 16_000, subtype=subtype)
    return path


def _speech_like(seed: int) -> np.ndarray:
    return (0.3 * _noise(seed)).astype(np.float32)


def test_cli_import_refuses_paths_outside_the_tsv_folder(cli, tmp_path: Path) -> None:
    _wav(tmp_path / "secret" / "private.wav", _speech_like(1))
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "link.wav").symlink_to(tmp_path / "secret" / "private.wav")
    for row in ("../secret/private.wav", str(tmp_path / "secret" / "private.wav"), "link.wav"):
        tsv = folder / "data.tsv"
        tsv.write_text(f"{row}\tTesto rubato\n", encoding="utf-8")
        result = cli("samples", "import", str(tsv))
        _one_line_error(result, f"{tsv}:1: il percorso {row} esce dalla cartella del file TSV")
    assert json.loads(cli("samples", "stats").out)["samples"] == 0
    # An admin who means it says so.
    allowed = cli("samples", "import", "--allow-outside", str(folder / "data.tsv"))
    assert allowed.code == 0 and json.loads(allowed.out)["added"] == 1


def test_the_imported_samples_are_removed_as_user_minus_one(cli, tmp_path: Path) -> None:
    """/contributors lists them under -1: that id removes them (a bad import undone)."""
    folder = tmp_path / "set"
    _wav(folder / "a.wav", _speech_like(3))
    _wav(folder / "b.wav", _speech_like(4))
    (folder / "data.tsv").write_text(
        "a.wav\tPrima frase importata\nb.wav\tSeconda frase importata\n", encoding="utf-8"
    )
    assert cli("samples", "import", str(folder / "data.tsv")).code == 0
    assert json.loads(cli("samples", "stats").out)["samples"] == 2
    assert parse_user_id(["-1"]) == repository.IMPORT_USER_ID
    assert cli("samples", "remove-user", "-1").code == 0
    assert json.loads(cli("samples", "stats").out)["samples"] == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "{tsv}: nessuna riga da leggere"),
        (b"# solo commenti\n\n", "{tsv}: nessuna riga da leggere"),
        (b"clip.wav\t\xff\xfe testo\n", "{tsv}: il file non è testo UTF-8 (byte 9)"),
        (b"clip.wav\n", "{tsv}:1: attese due colonne, percorso_audio<TAB>testo"),
    ],
    ids=["empty", "only-comments", "not-utf8", "one-column"],
)
def test_cli_import_refuses_unusable_manifests(
    cli, tmp_path: Path, content: bytes, message: str
) -> None:
    tsv = tmp_path / "data.tsv"
    tsv.write_bytes(content)
    _one_line_error(cli("samples", "import", str(tsv)), message.format(tsv=tsv))


def test_cli_import_reports_nan_audio_as_a_row_error(cli, tmp_path: Path) -> None:
    _wav(tmp_path / "nan.wav", np.full(CLIP_SAMPLES, np.nan, dtype=np.float32), "FLOAT")
    _wav(tmp_path / "inf.wav", np.full(CLIP_SAMPLES, np.inf, dtype=np.float32), "FLOAT")
    _wav(tmp_path / "good.wav", _speech_like(2))
    tsv = tmp_path / "data.tsv"
    tsv.write_text("nan.wav\tniente\ninf.wav\tinfinito\ngood.wav\tbuono\n", encoding="utf-8")
    result = cli("samples", "import", str(tsv))
    assert result.code == 1 and "Traceback" not in result.err
    report = json.loads(result.out)
    assert (report["added"], report["failed"]) == (1, 2)
    assert [(e["line"], e["path"]) for e in report["errors"]] == [(1, "nan.wav"), (2, "inf.wav")]


FORMULAS = ['=HYPERLINK("http://x")', "+39 333 000", "-5 gradi", "@SUM(A1:A9)"]


def test_cli_export_neutralises_spreadsheet_formulas(cli, tmp_path: Path) -> None:
    lines = []
    for n, text in enumerate(FORMULAS):
        _wav(tmp_path / f"clip{n}.wav", _speech_like(100 + n))
        lines.append(f"clip{n}.wav\t{text}")
    lines.append(f"clip{len(FORMULAS)}.wav\tTesto normale = bene")
    _wav(tmp_path / f"clip{len(FORMULAS)}.wav", _speech_like(200))
    (tmp_path / "data.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cli("samples", "import", str(tmp_path / "data.tsv")).code == 0
    assert cli("samples", "export", str(tmp_path / "out")).code == 0
    with (tmp_path / "out" / "metadata.csv").open(encoding="utf-8", newline="") as handle:
        cells = sorted(row["transcription"] for row in csv.DictReader(handle))
    assert cells == sorted([f"'{text}" for text in FORMULAS] + ["Testo normale = bene"])


@pytest.mark.parametrize("cell", ["\tcmd", "\rcmd", "=1+1", "+1", "-1", "@A1"])
def test_csv_cells_that_a_spreadsheet_would_run_become_text(cell: str) -> None:
    assert csv_safe(cell) == f"'{cell}"
    assert csv_safe(f"ok {cell}") == f"ok {cell}"


def test_cli_contributors_and_quarantine_list_as_json(cli, tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav", _speech_like(300))
    (tmp_path / "data.tsv").write_text("a.wav\tuno\n", encoding="utf-8")
    assert cli("samples", "import", str(tmp_path / "data.tsv")).code == 0
    (row,) = json.loads(cli("samples", "contributors").out)
    assert (row["user_id"], row["samples"], row["quarantined"]) == (
        repository.IMPORT_USER_ID,
        1,
        0,
    )
    assert json.loads(cli("samples", "quarantine").out) == []
