"""Labels cannot carry Whisper's control tokens (issue 19): corrections and imports refuse
them, and training tokenises label text with special tokens split."""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path

import pytest

from bot import messages
from bot.commands import samples
from bot.settings import Settings
from storage import repository
from storage.labels import has_control_token
from tests.support.bot_harness import USER, running_bot
from tests.support.speech import synthesize

TOKENS = ("<|endoftext|>", "<|en|>", "<|translate|>", "<|5.00|>", "<|nocaptions|>")
SENTENCE = "Domani andiamo al mare con gli amici."


def test_control_tokens_are_recognised() -> None:
    for token in TOKENS:
        assert has_control_token(f"ciao {token} a tutti")
        assert has_control_token(f"ciao{token}")
    for fine in ("ciao a tutti", "a < b | c > d", "<| aperta", "chiusa |>", "x|>y<|z"):
        assert not has_control_token(fine), fine


def test_label_text_never_becomes_a_special_token(model_cache: Path) -> None:
    from model.asr.sources import hf_dir
    from training.data import LabelEncoder

    encoder = LabelEncoder(hf_dir("packaged:whisper-base", cache_dir=model_cache).path,
                           language="it")  # fmt: skip
    special = set(encoder.tokenizer.all_special_ids) | {
        encoder.tokenizer.convert_tokens_to_ids(t) for t in TOKENS
    }
    for token in TOKENS:
        ids = encoder(f"Ciao {token} a tutti")
        tokens = encoder.tokenizer.convert_ids_to_tokens(ids)
        # The forced prefix and the final <|endoftext|> only: the label text is plain.
        assert tokens[:3] == ["<|it|>", "<|transcribe|>", "<|notimestamps|>"]
        assert tokens[-1] == "<|endoftext|>"
        assert not special & set(ids[3:-1]), (token, tokens)
        # Spelt out, character by character (decode() would drop timestamp-like text).
        pieces = encoder.tokenizer.convert_ids_to_tokens(ids[3:-1])
        assert encoder.tokenizer.convert_tokens_to_string(pieces) == f" Ciao {token} a tutti"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whisper-it")
    samples.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_samples_import_refuses_control_tokens(
    tmp_path: Path, speech_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "set"
    synthesize(SENTENCE, folder / "a.wav")
    synthesize("Il treno per Milano parte alle otto.", folder / "b.wav")
    (folder / "set.tsv").write_text(
        f"a.wav\t{SENTENCE} <|endoftext|>\nb.wav\tIl treno per Milano parte alle otto.\n"
        "a.wav\t... 👍\n",  # no word at all: refused as the bot refuses such a correction
        encoding="utf-8",
    )
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    args = _parser().parse_args(["samples", "import", str(folder / "set.tsv")])
    assert args.func(args, settings) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["added"], report["failed"]) == (1, 2)
    assert [(e["line"], e["error"]) for e in report["errors"]] == [
        (1, samples.CONTROL_TOKEN),
        (3, samples.NO_WORDS),
    ]


async def test_correction_with_a_control_token_is_refused(
    tmp_path: Path, ct2_transcriber, speech_dir: Path
) -> None:
    voice = synthesize(SENTENCE, speech_dir / "control_tokens.ogg").read_bytes()
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        emu = bot.emu
        sent = emu.send_voice(user_id=USER, data=voice, duration=3)
        (reply,) = await bot.wait_reply(sent["message_id"])
        stored = bot.transcription_by_reply(reply.message_id)
        before = len(emu.messages(USER))
        emu.send_text(user_id=USER, text=f"{SENTENCE} <|endoftext|>", reply_to=reply.message_id)
        await emu.async_wait_for(lambda: len(emu.messages(USER)) > before, timeout=10)
        answer = emu.messages(USER)[-1].content
        assert answer == html.unescape(messages.CORRECTION_CONTROL_TOKEN)
        assert "<|endoftext|>" in answer  # HTML-escaped, so Telegram shows it
        with bot.services.db.unit_of_work(read_only=True) as uow:
            assert repository.list_corrections(uow.session, stored.id) == []
