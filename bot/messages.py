"""Italian texts for every error a user can meet, keyed by the errors' ``reason`` codes."""

from __future__ import annotations

AUDIO_ERRORS: dict[str, str] = {
    "empty": "Il file è vuoto: non c'è niente da trascrivere.",
    "corrupt": "Non riesco a leggere questo file: sembra danneggiato o non è un audio/video.",
    "no_audio": "Questo file non contiene una traccia audio.",
    "too_big": "Il file è troppo grande.",
    "too_long": "L'audio è troppo lungo.",
    "too_short": "L'audio è troppo breve per essere trascritto.",
    "silent": "L'audio è muto: non ho sentito nessuna voce.",
    "invalid": "Non riesco a elaborare questo audio.",
}

LINK_ERRORS: dict[str, str] = {
    "not_allowed_host": "Accetto solo link di YouTube.",
    "bad_scheme": "Accetto solo link http o https di YouTube.",
    "playlist": "Le playlist non sono supportate: mandami il link di un singolo video.",
    "channel": "Questo è il link di un canale: mandami il link di un singolo video.",
    "not_a_video": "Questo link non punta a un video di YouTube.",
    "live": "Le dirette non sono supportate: riprova quando la diretta è finita.",
    "upcoming": "Questo video non è ancora disponibile (è una première o una diretta programmata).",
    "private": "Il video è privato: non posso scaricarlo.",
    "unavailable": "Il video non è disponibile (rimosso, bloccato o inesistente).",
    "age_restricted": "Il video ha limiti di età: non posso scaricarlo.",
    "too_long": "Il video è troppo lungo.",
    "too_big": "Il video è troppo grande.",
    "network": "Non riesco a raggiungere il sito del video: riprova più tardi.",
    "timeout": "Il download ha impiegato troppo tempo: riprova più tardi.",
    "no_audio": "Il video non contiene una traccia audio.",
    "download_failed": "Il download del video non è riuscito.",
}

MODEL_UNAVAILABLE = "Il modello di trascrizione non è disponibile: {detail}"


def audio_error(
    reason: str, *, max_seconds: float | None = None, max_mb: float | None = None
) -> str:
    text = AUDIO_ERRORS.get(reason, AUDIO_ERRORS["invalid"])
    if reason == "too_long" and max_seconds:
        text += f" Il massimo è {format_duration(max_seconds)}."
    if reason == "too_big" and max_mb:
        text += f" Il massimo è {max_mb:.0f} MB."
    return text


def link_error(reason: str, *, max_seconds: float | None = None) -> str:
    text = LINK_ERRORS.get(reason, LINK_ERRORS["download_failed"])
    if reason == "too_long" and max_seconds:
        text += f" Il massimo è {format_duration(max_seconds)}."
    return text


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    return f"{secs} s"
