"""Demonstration: the bot learns from corrections and gets better on speech it never heard.

1. Synthesise Italian speech with espeak-ng: TRAIN_SENTENCES x TRAIN_VOICES as the
   "corrections", and a disjoint general set (other sentences, other voices, other
   speeds, pink noise, Opus at 24 kbit/s) that training never sees.
2. Import the corrections through the real CLI (``whisper-it samples import``) into a fresh
   data folder (SQLite + audio store).
3. Train with the DEFAULT training settings (``whisper-it train --wait``): the real
   subprocess, checkpoints, CTranslate2 int8 export, the gate and the promotion.
4. Report WER before and after, with the serving engine (faster-whisper int8, beam 5), on
   the in-domain held-out split and on the disjoint general set; write
   ``benchmarks/results/demo_training.{json,md}``.

Run: ``.venv/bin/python benchmarks/demo_training.py`` (about 25-30 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common

from tests.speech import synthesize

# Natural sentences, spoken without digits or abbreviations (the reference is what espeak
# says). Training and general sets share no sentence.
TRAIN_SENTENCES: tuple[str, ...] = (
    "Stamattina ho preso il caffè al bar sotto casa.",
    "Il negozio di alimentari chiude alle sette di sera.",
    "Mia sorella lavora in un ospedale di Torino.",
    "Abbiamo prenotato una camera con vista sul lago.",
    "Il medico mi ha consigliato di camminare di più.",
    "Questa estate faremo un viaggio in Sicilia.",
    "Il cane del vicino abbaia tutta la notte.",
    "Ho dimenticato l'ombrello sull'autobus.",
    "La riunione è stata spostata a giovedì pomeriggio.",
    "Potresti chiudere la finestra, per favore?",
    "Il museo offre l'ingresso gratuito la prima domenica del mese.",
    "I bambini giocano a pallone nel cortile della scuola.",
    "Ho comprato le arance e le mele al mercato.",
    "Il professore ha spiegato la lezione con molta pazienza.",
    "La strada per il paese è piena di curve.",
    "Domenica pranziamo dai nonni in campagna.",
    "Ti mando un messaggio quando arrivo alla stazione.",
    "Il film che abbiamo visto ieri era molto lungo.",
    "Devo portare la macchina dal meccanico.",
    "Le giornate si accorciano quando arriva l'autunno.",
    "Mio fratello suona la chitarra in una band.",
    "Il ristorante in piazza prepara un ottimo risotto.",
    "Non trovo più le chiavi di casa.",
    "La nuova linea della metropolitana apre il mese prossimo.",
    "Il gatto dorme sempre sul divano del salotto.",
    "Abbiamo camminato lungo il fiume fino al tramonto.",
    "La farmacia di turno è aperta anche di notte.",
    "Vorrei un bicchiere d'acqua senza ghiaccio.",
    "Gli studenti preparano l'esame di storia.",
    "Il concerto è stato annullato per la pioggia.",
    "La nonna prepara i biscotti ogni sabato mattina.",
    "Il volo per Parigi ha un'ora di ritardo.",
    "Ho letto un articolo interessante sul giornale.",
    "In primavera il giardino si riempie di fiori.",
    "Il sindaco ha inaugurato la nuova piazza.",
    "Mi sono iscritto a un corso di cucina.",
    "Il pullman per l'aeroporto parte dalla piazza centrale.",
    "Quando piove preferisco restare a casa a leggere.",
    "La squadra ha vinto la partita all'ultimo minuto.",
    "Il panettiere apre il forno alle cinque del mattino.",
    "Abbiamo bisogno di un tavolo per quattro persone.",
    "La lavatrice fa un rumore strano da qualche giorno.",
    "Il pittore ha esposto i suoi quadri in una galleria.",
    "Sul treno ho conosciuto una signora molto simpatica.",
    "Le montagne erano coperte di neve fresca.",
    "Ricordati di pagare la bolletta della luce.",
    "Il porto di Genova è pieno di navi.",
    "Questa sera guardiamo la partita a casa di Marco.",
)
GENERAL_SENTENCES: tuple[str, ...] = (
    "La biblioteca dell'università resta aperta fino a mezzanotte.",
    "Ho trovato un appartamento vicino al centro storico.",
    "Il vento forte ha fatto cadere un albero sulla strada.",
    "Mia madre coltiva i pomodori sul balcone.",
    "Il tecnico arriverà domani mattina per riparare la caldaia.",
    "Abbiamo festeggiato il compleanno di Giulia in pizzeria.",
    "Il traghetto per la Sardegna parte stasera.",
    "Le scuole resteranno chiuse per le elezioni.",
    "Il cuoco ha aggiunto troppo sale alla minestra.",
    "Durante le vacanze ho imparato a nuotare.",
    "Il postino ha lasciato un pacco dal portiere.",
    "Questa città è famosa per le sue fontane antiche.",
    "Mio zio ripara le biciclette nel suo garage.",
    "La mostra di fotografia chiude alla fine del mese.",
    "Ho perso il treno e sono arrivato tardi al lavoro.",
    "Il parco giochi è stato rinnovato durante l'inverno.",
)
TRAIN_VOICES = ("it+m1", "it+f2", "it+m3")
TRAIN_SPEED = 150
GENERAL_VOICES = (("it+f4", 140), ("it+m6", 165), ("it+f5", 155))
NOISE_AMPLITUDE = 0.02  # pink noise; espeak speech peaks around 0.3-0.6
OPUS_BITRATE = "24k"
DEFAULT_WORKDIR = Path("/tmp/whisper-it-demo")


def synthesize_sets(workdir: Path) -> tuple[Path, Path]:
    """Write ``train.tsv`` (WAV) and ``general.tsv`` (noisy Opus); returns both paths."""
    audio = workdir / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    train_rows = []
    for s, sentence in enumerate(TRAIN_SENTENCES):
        for voice in TRAIN_VOICES:
            name = f"train-{s:02d}-{voice.replace('+', '')}.wav"
            if not (audio / name).exists():
                synthesize(sentence, audio / name, voice=voice, speed=TRAIN_SPEED)
            train_rows.append(f"audio/{name}\t{sentence}")
    general_rows = []
    for s, sentence in enumerate(GENERAL_SENTENCES):
        for voice, speed in GENERAL_VOICES:
            name = f"general-{s:02d}-{voice.replace('+', '')}.ogg"
            if not (audio / name).exists():
                clean = synthesize(sentence, audio / f".{name}.wav", voice=voice, speed=speed)
                _noisy_opus(clean, audio / name)
                clean.unlink()
            general_rows.append(f"audio/{name}\t{sentence}")
    train, general = workdir / "train.tsv", workdir / "general.tsv"
    train.write_text("\n".join(train_rows) + "\n", encoding="utf-8")
    general.write_text("\n".join(general_rows) + "\n", encoding="utf-8")
    return train, general


def _noisy_opus(clean: Path, out: Path) -> None:
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(clean),
         "-f", "lavfi", "-i", f"anoisesrc=color=pink:amplitude={NOISE_AMPLITUDE}:sample_rate=16000",
         "-filter_complex", "[0:a][1:a]amix=inputs=2:duration=first:normalize=0",
         "-ar", "16000", "-ac", "1", "-c:a", "libopus", "-b:a", OPUS_BITRATE, str(out)],
        check=True,
    )  # fmt: skip


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=_common.REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def run(workdir: Path, *, max_steps: int | None) -> dict[str, object]:
    machine = _common.machine_info()  # the load average before we add to it
    train_tsv, general_tsv = synthesize_sets(workdir)
    data_dir = workdir / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    # The packaged model assembled once is reused; everything else starts empty.
    env = {
        **os.environ,
        "WHISPER_IT_DATA_DIR": str(data_dir),
        "WHISPER_IT_EVAL_GENERAL_SET": str(general_tsv),
        "PYTHONUNBUFFERED": "1",
    }
    started = time.perf_counter()
    imported = _cli(["samples", "import", str(train_tsv)], env)
    if imported.returncode != 0:
        raise SystemExit(f"import failed: {imported.stderr}")
    import_seconds = time.perf_counter() - started
    train_args = ["train", "--wait"] + (["--max-steps", str(max_steps)] if max_steps else [])
    started = time.perf_counter()
    trained = _cli(train_args, env)
    run_seconds = time.perf_counter() - started
    sys.stderr.write(trained.stderr[-4000:])
    if trained.returncode != 0:
        raise SystemExit(f"training failed: {trained.stderr[-2000:]}")
    verdict = json.loads(trained.stdout[trained.stdout.index("{") :])

    from storage import repository
    from storage.samples import sample_stats
    from storage.unit_of_work import Database

    database = Database.open(f"sqlite:///{(data_dir / 'whisper-it.sqlite3').resolve()}")
    with database.unit_of_work(read_only=True) as uow:
        run_row = repository.latest_training_run(uow.session)
        stats = sample_stats(uow.session).to_dict()
        history = repository.wer_history(uow.session)
    database.close()
    assert run_row is not None
    metrics = dict(run_row.metrics)
    gate = metrics.get("gate", {})
    return {
        "machine": machine,
        "settings": "defaults (bot/settings.py # --- Training ---)",
        "train_clips": len(TRAIN_SENTENCES) * len(TRAIN_VOICES),
        "general_clips": len(GENERAL_SENTENCES) * len(GENERAL_VOICES),
        "train_voices": list(TRAIN_VOICES),
        "general_voices": [v for v, _ in GENERAL_VOICES],
        "samples": stats,
        "import_seconds": round(import_seconds, 1),
        "run_seconds": round(run_seconds, 1),
        "finetune": metrics.get("finetune"),
        "before": gate.get("current"),
        "after": gate.get("candidate"),
        "promoted": verdict.get("promoted"),
        "reasons": verdict.get("reasons"),
        "wer_history": [
            {"model": p.model_version, "set": p.eval_set, "wer": p.wer, "cer": p.cer, "n": p.count}
            for p in history
        ],
    }


def markdown(result: dict[str, object]) -> str:
    before = result["before"] or {}
    after = result["after"] or {}
    rows = []
    for name in after:  # type: ignore[union-attr]
        b, a = before[name], after[name]  # type: ignore[index]
        rows.append(
            [name, a["n"], f"{100 * b['wer']:.1f}%", f"{100 * a['wer']:.1f}%",
             f"{100 * b['cer']:.1f}%", f"{100 * a['cer']:.1f}%",
             f"{100 * a['insertion_rate']:.1f}%"]
        )  # fmt: skip
    ft = result["finetune"] or {}
    machine = result["machine"]
    table = _common.markdown_table(
        ["set", "clips", "WER before", "WER after", "CER before", "CER after", "insertions"],
        rows,
    )
    return f"""# Re-fine-tuning demonstration

Training: {result["train_clips"]} espeak-ng clips ({len(TRAIN_SENTENCES)} sentences x voices
{", ".join(TRAIN_VOICES)}), imported as corrections; the hash-chosen eval split of those
samples is the in-domain `heldout` set. `general`: {result["general_clips"]} clips of
{len(GENERAL_SENTENCES)} *other* sentences, *other* voices ({", ".join(result["general_voices"])}),
other speeds, pink noise, Opus {OPUS_BITRATE}. Scored with the serving engine
(faster-whisper int8, beam 5, normalised WER). Default settings.

{table}

Promoted: **{result["promoted"]}** ({"; ".join(result["reasons"] or [])}).

Fine-tuning: mode {ft.get("mode")}, {ft.get("steps")} steps, {ft.get("seconds_per_step")} s/step,
{ft.get("train_seconds")} s of training ({ft.get("examples")} cached examples incl. augmented
copies); whole run (snapshot, cache, training, export, evaluation of both models,
promotion): {result["run_seconds"]} s wall.
Machine: {machine.get("cpu")}, load average {machine.get("load_average_1_5_15")} at the start.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--max-steps", type=int, help="override (default: the settings')")
    args = parser.parse_args()
    result = run(args.workdir, max_steps=args.max_steps)
    name = "demo_training" if args.max_steps is None else "demo_training_custom"
    paths = _common.write_results(name, result, markdown(result))
    print(markdown(result))
    print(f"written: {', '.join(str(p) for p in paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
