"""The correction loop as admins drive it from Telegram, and the hot swap of a promoted
model in a running bot."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.training_control import MAX_ATTEMPTS
from bot.training_texts import MODELS_MORE, MODELS_SHOWN
from model.asr.packaged import packaged_base_dir
from model.asr.registry import ModelRegistry
from model.asr.sources import hf_dir
from storage import training_records
from tests.support.bot_harness import ADMIN, USER, running_bot
from tests.support.fake_versions import install_fake_version
from tests.support.speech import synthesize
from tests.support.training_support import made_up_evaluation
from training.arguments import FinetuneResult
from training.gate import decide
from training.report import DataFacts, RunReport

ADMIN_ONLY = ("/retrain", "/status", "/wer", "/models", "/rollback")


@pytest.fixture(scope="module")
def voice_note(speech_dir: Path) -> bytes:
    return synthesize("Il treno per Milano parte alle otto.", speech_dir / "swap.ogg").read_bytes()


async def test_training_commands_are_for_admins_only(tmp_path: Path, fake_transcriber) -> None:
    async with running_bot(tmp_path, fake_transcriber) as bot:
        for command in ADMIN_ONLY:
            bot.emu.send_text(user_id=USER, text=command)
        await bot.emu.async_wait_for(lambda: len(bot.texts(USER)) == len(ADMIN_ONLY))
        assert all("riservato agli amministratori" in t for t in bot.texts(USER))
        assert not bot.emu.calls_to("sendPhoto")
        with bot.services.db.unit_of_work(read_only=True) as uow:
            assert training_records.latest_training_run(uow.session) is None


async def test_admin_sees_wer_history_as_table_and_plot(tmp_path: Path, fake_transcriber) -> None:
    async with running_bot(tmp_path, fake_transcriber) as bot:
        bot.emu.open_chat(user_id=ADMIN)
        bot.emu.send_text(user_id=ADMIN, text="/wer")
        await bot.wait_text(lambda t: "Nessuna valutazione" in t, chat_id=ADMIN)
        with bot.services.db.unit_of_work() as uow:
            base = training_records.add_model_version(uow.session, name="base")
            tuned = training_records.add_model_version(
                uow.session, name="v1-test", parent_id=base.id
            )
            for version, wer in ((base, 0.52), (tuned, 0.21)):
                training_records.add_evaluation(
                    uow.session,
                    model_version_id=version.id,
                    eval_set="heldout",
                    wer=wer,
                    cer=wer / 3,
                    count=15,
                )
            uow.commit()
        bot.emu.send_text(user_id=ADMIN, text="/wer")
        table = await bot.wait_text(lambda t: "Storico WER" in t, chat_id=ADMIN)
        assert "52.0%" in table and "21.0%" in table and "v1-test" in table
        photo = await bot.wait_message(lambda m: m.photo is not None, chat_id=ADMIN)
        assert photo.photo.data.startswith(b"\x89PNG")
        bot.emu.send_text(user_id=ADMIN, text="/models")
        listing = await bot.wait_text(lambda t: "Versioni del modello" in t, chat_id=ADMIN)
        assert "v1-test" in listing and "heldout 21.0%" in listing


async def test_retrain_starts_a_run_and_status_reports_it(tmp_path: Path, fake_transcriber) -> None:
    async with running_bot(tmp_path, fake_transcriber, train_min_samples=1) as bot:
        bot.emu.open_chat(user_id=ADMIN)
        bot.emu.send_text(user_id=ADMIN, text="/retrain")
        started = await bot.wait_text(lambda t: "Addestramento #" in t, chat_id=ADMIN)
        assert "avviato" in started
        run_id = int(started.split("#")[1].split()[0])
        training = bot.services.training
        # No samples at all: the run fails (in its own process) and says why.
        assert await bot.emu.async_wait_for(lambda: training.wait(run_id, 0.1) is not None, 120)
        bot.emu.send_text(user_id=ADMIN, text="/status")
        status = await bot.wait_text(
            lambda t: t.startswith(f"Addestramento #{run_id}:"), chat_id=ADMIN
        )
        assert "fallito" in status and "0 training samples" in status, status
        # The trainer ran in the run's folder under the data folder, not in a source tree.
        run_dir = bot.services.settings.data_dir / "runs" / f"run-{run_id:04d}"
        assert (run_dir / "train.log").is_file() and (run_dir / "run_config.json").is_file()
        bot.emu.send_text(user_id=ADMIN, text="/rollback")
        await bot.wait_text(lambda t: "Non posso tornare indietro" in t, chat_id=ADMIN)


async def test_a_promoted_model_is_swapped_in_between_jobs(
    tmp_path: Path, model_cache: Path, voice_note: bytes
) -> None:
    # The real model loading path: no shared transcriber, so the holder loads from specs.
    async with running_bot(tmp_path, None, model_cache_dir=model_cache) as bot:
        first = bot.emu.send_voice(user_id=USER, data=voice_note, duration=3)
        await bot.wait_job(first["message_id"])
        assert bot.transcriptions()[-1].model_version == "whisper-base"

        # A training run promotes "v2-test": install it and move the pointer, as promote does.
        packaged = packaged_base_dir(model_cache)
        registry = ModelRegistry(bot.services.settings.models_dir)
        registry.install(
            "v2-test",
            hf_dir=hf_dir("packaged:whisper-base", cache_dir=model_cache).path,
            ct2_dir=packaged,
            metrics={"parent": "base"},
            card="# test",
        )
        registry.set_current("v2-test")

        second = bot.emu.send_voice(user_id=USER, data=voice_note, duration=3)
        job = await bot.wait_job(second["message_id"])
        assert job.status == "done"
        assert bot.transcriptions()[-1].model_version == "v2-test"
        assert bot.services.pipeline.models.spec.endswith("v2-test/ct2")

        # Rolling back is the same swap the other way, without a restart either.
        bot.emu.open_chat(user_id=ADMIN)
        bot.emu.send_text(user_id=ADMIN, text="/rollback")
        await bot.wait_text(lambda t: "Torno al modello" in t and "base" in t, chat_id=ADMIN)
        third = bot.emu.send_voice(user_id=USER, data=voice_note, duration=3)
        await bot.wait_job(third["message_id"])
        assert bot.transcriptions()[-1].model_version == "whisper-base"
    shutil.rmtree(tmp_path / "models", ignore_errors=True)


def _refused_report(run_id: int = 1, candidate: str = "v1") -> RunReport:
    """A refused candidate: better on new sentences, but it forgets general speech."""
    from training.gate import ClipOrigin

    current = {"heldout": made_up_evaluation([6] * 10, voices=3),
               "general": made_up_evaluation([0] * 8)}  # fmt: skip
    candidate_sets = {"heldout": made_up_evaluation([1] * 10, voices=3),
                      "general": made_up_evaluation([2] * 8)}  # fmt: skip
    # Each voice is its own user: three users, so the held-out corrections judge.
    origins = {Path(f"/clips/{s}-{v}.flac"): ClipOrigin(f"user:{v}", True)
               for s in range(10) for v in range(3)}  # fmt: skip
    decision = decide(current, candidate_sets, origins=origins)
    assert not decision.promote
    return RunReport(
        run_id=run_id, candidate=candidate, parent="base", promoted=False, gate=decision,
        finetune=FinetuneResult(Path("/r/final"), "cpu", 40, 40, 0.3, 400.0, 10.0, 0.8, 120,
                                None, False, best_step=30, validation_clips=18),
        data=DataFacts(samples_used=120, train_clips=120, heldout_clips=20),
        base_model="packaged:whisper-base", created_at="2026-01-01T00:00:00+00:00",
    )  # fmt: skip


async def test_status_wer_and_models_show_the_gates_reasons(
    tmp_path: Path, fake_transcriber
) -> None:
    """A refused candidate: admins read why, per set, with the interval and clip count."""
    report = _refused_report()
    async with running_bot(tmp_path, fake_transcriber) as bot:
        with bot.services.db.unit_of_work() as uow:
            run = training_records.create_training_run(uow.session, config={})
            training_records.finish_training_run(
                uow.session, run.id, status="done", report=report.to_dict()
            )
            base = training_records.add_model_version(uow.session, name="base")
            training_records.add_model_version(
                uow.session, name="v1", parent_id=base.id, metrics={"report": report.to_dict()}
            )
            for version, wer in ((base.id, 0.5), (base.id + 1, 0.08)):
                training_records.add_evaluation(
                    uow.session, model_version_id=version, eval_set="heldout", wer=wer, cer=0.1,
                    count=20,
                )  # fmt: skip
            uow.commit()
        bot.emu.open_chat(user_id=ADMIN)
        bot.emu.send_text(user_id=ADMIN, text="/status")
        status = await bot.wait_text(lambda t: t.startswith("Addestramento #1"), chat_id=ADMIN)
        assert "Modello non promosso" in status and "Passo tenuto: 30 di 40" in status
        assert "frasi mai viste: WER 50.0% → 8.3%" in status, status
        assert "30 clip, 10 frasi): migliore" in status
        assert "❌ insieme generale: WER 0.0% → 16.7%" in status
        assert "intervallo al 95%" in status  # the gain test's; guards show their own
        assert "16.7 punti, intervallo al 80%" in status
        bot.emu.send_text(user_id=ADMIN, text="/wer")
        table = await bot.wait_text(lambda t: "Storico WER" in t, chat_id=ADMIN)
        assert "Ultimo verdetto" in table and "non promosso" in table
        assert "insieme generale: WER 0.0% → 16.7%" in table
        bot.emu.send_text(user_id=ADMIN, text="/models")
        listing = await bot.wait_text(lambda t: "Versioni del modello" in t, chat_id=ADMIN)
        assert "rifiutato: ✅ frasi mai viste" in listing, listing


async def test_a_killed_trainer_is_resumed_then_given_up_and_admins_hear_it(
    tmp_path: Path, fake_transcriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OOM killer's way: the trainer dies without closing its run. /status says so,
    the watcher resumes it (and tells the admins), and gives up after MAX_ATTEMPTS."""
    from bot.handlers.training_admin import watch_runs

    killed = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
    async with running_bot(tmp_path, fake_transcriber, train_schedule_hours=0) as bot:
        training = bot.services.training
        monkeypatch.setattr(training, "_spawn", lambda config, log: subprocess.Popen(killed))
        tick = SimpleNamespace(application=bot.app, bot=bot.app.bot)  # the job's context
        bot.emu.open_chat(user_id=ADMIN)
        bot.emu.send_text(user_id=ADMIN, text="/retrain")
        started = await bot.wait_text(lambda t: "Addestramento #" in t, chat_id=ADMIN)
        run_id = int(started.split("#")[1].split()[0])

        async def killed_again() -> list[str]:
            await bot.emu.async_wait_for(lambda: training.wait(run_id, 0.1) is not None, 30)
            before = len(bot.texts(ADMIN))
            await watch_runs(tick)  # type: ignore[arg-type]
            return bot.texts(ADMIN)[before:]

        await bot.emu.async_wait_for(lambda: training.wait(run_id, 0.1) is not None, 30)
        bot.emu.send_text(user_id=ADMIN, text="/status")
        status = await bot.wait_text(lambda t: t.startswith(f"Addestramento #{run_id}:"), ADMIN)
        assert "interrotto" in status and "in attesa" not in status, status
        for _ in range(MAX_ATTEMPTS - 1):
            (told,) = await killed_again()
            assert f"#{run_id} si è fermato" in told and "ripreso" in told, told
        (told,) = await killed_again()
        assert "interrotto troppe volte" in told, told
        with bot.services.db.unit_of_work(read_only=True) as uow:
            run = training_records.get_training_run(uow.session, run_id)
            assert run is not None and run.status == "failed"
        before = len(bot.texts(ADMIN))
        await watch_runs(tick)  # type: ignore[arg-type]
        assert len(bot.texts(ADMIN)) == before  # its end was told once


async def test_models_lists_the_latest_versions_in_one_message(
    tmp_path: Path, fake_transcriber
) -> None:
    """A month of daily runs, each recorded with its gate's verdict: /models used to pass
    Telegram's 4096 characters and fail. The serving version and its parent always show."""
    runs = 30
    async with running_bot(tmp_path, fake_transcriber, train_schedule_hours=0) as bot:
        registry = ModelRegistry(bot.services.settings.models_dir)
        install_fake_version(registry, tmp_path, "v2", "v1")
        install_fake_version(registry, tmp_path, "v3", "v2")
        registry.set_current("v3")  # an old version serves: every later one was refused
        with bot.services.db.unit_of_work() as uow:
            parent = training_records.add_model_version(uow.session, name="base")
            for n in range(1, runs + 1):
                metrics = {"report": _refused_report(n, f"v{n}").to_dict()}
                parent = training_records.add_model_version(
                    uow.session, name=f"v{n}", parent_id=parent.id, metrics=metrics
                )
                training_records.add_evaluation(
                    uow.session, model_version_id=parent.id, eval_set="heldout", wer=0.3,
                    cer=0.1, count=20,
                )  # fmt: skip
            uow.commit()
        bot.emu.open_chat(user_id=ADMIN)
        bot.emu.send_text(user_id=ADMIN, text="/models")
        listing = await bot.wait_text(lambda t: "Versioni del modello" in t, chat_id=ADMIN)
        assert len(listing) <= 4096
        lines = listing.splitlines()  # (the emulator keeps the text, entities apart)
        shown = {line.split()[1] for line in lines if line.startswith(("• ", "▶️ "))}
        latest = {f"v{n}" for n in range(runs - MODELS_SHOWN + 1, runs + 1)}
        assert shown == latest | {"v2", "v3"}, shown
        assert "▶️ v3 – heldout 30.0%" in lines
        hidden = runs + 1 - len(shown)  # and the base model
        assert lines[-1] == MODELS_MORE.format(count=hidden), lines[-1]


async def test_rollback_refusals_are_in_italian(tmp_path: Path, fake_transcriber) -> None:
    async with running_bot(tmp_path, fake_transcriber, train_schedule_hours=0) as bot:
        bot.emu.open_chat(user_id=ADMIN)
        bot.emu.send_text(user_id=ADMIN, text="/rollback")
        base = await bot.wait_text(lambda t: "Non posso tornare indietro" in t, chat_id=ADMIN)
        assert "è già in servizio il modello di base" in base, base
        # The version to go back to has had its folder deleted.
        registry = ModelRegistry(bot.services.settings.models_dir)
        install_fake_version(registry, tmp_path, "v6", "base")
        install_fake_version(registry, tmp_path, "v7", "v6")
        registry.set_current("v7")
        shutil.rmtree(registry.root / "versions" / "v6")
        bot.emu.send_text(user_id=ADMIN, text="/rollback")
        await bot.emu.async_wait_for(lambda: len(bot.texts(ADMIN)) == 2)
        missing = bot.texts(ADMIN)[-1]
        assert "la versione v6 non c'è fra i modelli installati" in missing, missing
        assert not any("does not exist" in t or "nothing to roll" in t for t in bot.texts(ADMIN))
        # CURRENT itself names a version whose folder is gone: the base model serves
        # already, and /rollback sets the pointer to it.
        shutil.rmtree(registry.root / "versions" / "v7")
        bot.emu.send_text(user_id=ADMIN, text="/rollback")
        await bot.emu.async_wait_for(lambda: len(bot.texts(ADMIN)) == 3)
        assert "Torno al modello base:" in bot.texts(ADMIN)[-1]
        assert registry.current_name() == "base"
