"""The command line's error lines are Italian, as every other text a user reads: the
library layer's English (model.asr, the registry) is worded at the boundary with the bot's
own texts, and a flag out of range is a wrong command line (exit 2 with the usage), with
the bounds of the setting it overrides. In-process through ``bot.cli.main``; no model is
loaded."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot import messages
from bot.cli import CommandError
from bot.commands import run_bot, training, worker
from bot.settings import Settings
from bot.training_control import StartRefusal, StartResult, TrainingControl, TrainingStatus
from bot.training_texts import ROLLBACK_NOTHING, plain_text, rollback_refusal_text
from model.asr.registry import VersionMissing
from storage.models import RunStatus
from tests.support.cli_commands import CliResult

USAGE_EXIT = 2


def _one_line_error(result: CliResult, message: str) -> None:
    assert (result.code, result.err) == (1, f"whisper-it: {message}\n")


def _usage_error(result: CliResult, command: str, message: str) -> None:
    assert result.code == USAGE_EXIT, result
    assert result.err.startswith(f"usage: whisper-it {command}"), result.err
    assert result.err.rstrip().endswith(message), result.err


# --------------------------------------------------------------------------- flags


def test_max_steps_below_one_is_a_wrong_command_line(cli) -> None:
    _usage_error(
        cli("train", "--max-steps", "0"), "train", "'0' non è ammesso: deve essere almeno 1"
    )
    _usage_error(cli("train", "--max-steps", "tre"), "train", "'tre' non è un numero intero")


@pytest.mark.parametrize(
    ("flag", "setting", "value", "message"),
    [
        ("--eval-fraction", "eval_fraction", "1", "deve essere almeno 0 e minore di 1"),
        ("--eval-fraction", "eval_fraction", "-0.5", "deve essere almeno 0 e minore di 1"),
        ("--eval-min-sentences", "eval_min_sentences", "-3", "deve essere almeno 0"),
    ],
)
@pytest.mark.parametrize("command", ["stats", "contributors", "export"])
def test_split_flags_refuse_what_the_settings_refuse(
    cli, command: str, flag: str, setting: str, value: str, message: str
) -> None:
    with pytest.raises(ValidationError):  # the same value as a setting
        Settings(_env_file=None, **{setting: value})  # type: ignore[call-arg]
    extra = ["out"] if command == "export" else []
    result = cli("samples", command, *extra, flag, value)
    _usage_error(result, f"samples {command}", f"'{value}' non è ammesso: {message}")


def test_split_flags_accept_what_the_settings_accept(cli) -> None:
    assert cli("db", "upgrade").code == 0
    result = cli("samples", "stats", "--eval-fraction", "0", "--eval-min-sentences", "0")
    assert result.code == 0, result.err


def test_evaluate_needs_a_tsv_or_the_general_set_not_both(cli, tmp_path: Path) -> None:
    message = "indica un file TSV oppure --general-set (uno dei due)"
    _usage_error(cli("evaluate"), "evaluate", message)
    _usage_error(cli("evaluate", str(tmp_path / "set.tsv"), "--general-set"), "evaluate", message)


# --------------------------------------------------------------------------- training


def test_rollback_on_the_base_model_says_so_in_italian(cli) -> None:
    assert cli("db", "upgrade").code == 0
    _one_line_error(cli("rollback"), f"Non posso tornare indietro: {ROLLBACK_NOTHING}")


def test_the_rollback_refusal_reaches_the_terminal_without_markup() -> None:
    text = plain_text(rollback_refusal_text(VersionMissing("gone", name="v<3>&")))
    assert "<code>" not in text and "v<3>&" in text
    assert text.startswith("Non posso tornare indietro: la versione v<3>& non c'è")


@pytest.mark.parametrize(
    ("refusal", "bot_only"),
    [(StartRefusal.IN_PROGRESS, "/status"), (StartRefusal.GIVEN_UP, "/retrain")],
)
def test_a_refused_train_points_to_what_the_command_line_offers(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: StartRefusal, bot_only: str
) -> None:
    refused = StartResult(False, 2, 1234, refusal=refusal)
    monkeypatch.setattr(TrainingControl, "start_run", lambda self, **_: refused)
    result = cli("train")
    assert result.code == 1 and result.err.startswith("whisper-it: "), result.err
    assert bot_only not in result.err
    assert "whisper-it" in result.err.removeprefix("whisper-it: ")
    assert str(tmp_path / "data" / "runs" / "run-0002" / "train.log") in result.err
    assert "l'addestramento #2" in result.err.lower()


class _FinishedRun:
    """A TrainingControl whose run ``run_id`` has ended as ``status``."""

    def __init__(self, status: TrainingStatus | None) -> None:
        self.status = status

    def wait(self, run_id: int, timeout: float | None = None) -> int:
        return 1

    def get_run(self, run_id: int) -> TrainingStatus | None:
        return self.status


def _ended(status: str, error: str | None) -> TrainingStatus:
    now = dt.datetime.now(dt.UTC)
    return TrainingStatus(
        run_id=1, status=status, phase=None, steps_done=0, steps_total=None, progress=0.0,
        samples_used=None, error=error, created_at=now, started_at=now, finished_at=now,
        updated_at=now,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            _ended(RunStatus.FAILED, "SnapshotError: 3 training samples; at least 10 needed"),
            "l'addestramento #1 non è riuscito (stato: fallito): SnapshotError: 3 training "
            "samples; at least 10 needed",
        ),
        (
            _ended(RunStatus.CANCELLED, None),
            "l'addestramento #1 non è riuscito (stato: annullato): il processo di "
            "addestramento si è fermato",
        ),
        (_ended(RunStatus.DONE, None), "l'addestramento #1 è finito senza un resoconto"),
        (None, "l'addestramento #1 non è più nel database"),
    ],
)
def test_train_wait_words_a_run_without_a_verdict_in_italian(
    status: TrainingStatus | None, message: str
) -> None:
    with pytest.raises(CommandError) as failed:
        training._follow(_FinishedRun(status), 1)  # type: ignore[arg-type]
    assert str(failed.value) == message


# --------------------------------------------------------------------------- model files


def test_model_folders_that_are_not_there_or_hold_no_model(cli, tmp_path: Path) -> None:
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.mkdir()
    out = str(tmp_path / "out")
    _one_line_error(
        cli("import-model", str(missing), out), f"cartella del modello inesistente: {missing}"
    )
    _one_line_error(
        cli("import-model", str(empty), out),
        f"{empty} non contiene né un modello CTranslate2 né un checkpoint Whisper",
    )
    _one_line_error(
        cli("export-model", str(missing), out), f"cartella del modello inesistente: {missing}"
    )
    result = cli("export-model", str(empty), out)
    assert result.code == 1
    assert result.err.startswith(f"whisper-it: {empty} non è un checkpoint Whisper di Hugging Face")


# --------------------------------------------------------------------------- services


def test_the_services_without_a_token_say_what_to_set_in_italian(cli) -> None:
    bot = cli("bot")
    _one_line_error(bot, run_bot.NO_TOKEN)
    assert "imposta WHISPER_IT_TELEGRAM_TOKEN" in bot.err and "@BotFather" in bot.err
    workers = cli("worker")
    _one_line_error(workers, worker.NO_TOKEN)
    assert "imposta WHISPER_IT_TELEGRAM_TOKEN" in workers.err


# --------------------------------------------------------------------------- samples import


def test_clips_that_cannot_be_decoded_are_refused_with_the_bots_words(cli, tmp_path: Path) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_bytes(b"these are no audio samples, only text\n" * 64)
    tsv = tmp_path / "set.tsv"
    tsv.write_text("empty.wav\tciao a tutti\nnotes.wav\tbuongiorno a voi\n", encoding="utf-8")
    result = cli("samples", "import", str(tsv))
    assert result.code == 1, result.err
    errors = json.loads(result.out)["errors"]
    assert [error["error"] for error in errors] == [
        messages.audio_error("empty"),
        messages.audio_error("corrupt"),
    ]
