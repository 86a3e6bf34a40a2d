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
    "bad_url": "Questo non sembra un link valido: mandami il link di un video di YouTube.",
    "blocked": (
        "YouTube non permette a questo server di scaricare i video: chiede di dimostrare "
        "che non è un robot. Riprovare non serve finché gli amministratori non lo "
        "risolvono (sono stati avvisati). Intanto puoi mandarmi l'audio come file o "
        "messaggio vocale."
    ),
    "cancelled": "Download annullato.",
    "needs_program": (
        "Questo video usa un formato che richiede programmi esterni (ffmpeg, rtmpdump…): "
        "per sicurezza scarico solo formati normali, quindi non posso trascriverlo."
    ),
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


START = (
    "Ciao! 👋 Sono <b>whisper-it</b>: trasformo in testo l'audio in italiano.\n\n"
    "Mandami un <b>messaggio vocale</b>, un file audio o video, oppure un <b>link di YouTube</b>: "
    "ti rispondo con la trascrizione e qualche hashtag.\n\n"
    "Se sbaglio, <b>rispondi al mio messaggio</b> con il testo corretto: "
    "imparo dalle tue correzioni. /help per i dettagli, /privacy per i tuoi dati."
)
HELP = (
    "<b>Come funziona</b>\n"
    "• Mandami un vocale, un audio, un video o un documento audio/video (massimo {max_mb} MB, "
    "{max_duration}).\n"
    "• Oppure un link di un video di YouTube.\n"
    "• Per correggere una trascrizione, rispondi al mio messaggio con il testo giusto.\n"
    "• Se invece è giusta, premi <b>✅ Giusto</b> sotto la trascrizione: mi aiuta a imparare.\n\n"
    "<b>Nei gruppi</b> rispondo solo se mi menzioni, se rispondi a un mio messaggio, "
    "o con /trascrivi in risposta a un audio.\n\n"
    "<b>Comandi</b>\n"
    "/start – presentazione\n/help – questo aiuto\n"
    "/privacy – cosa conservo e per quanto\n/forget – cancella tutti i tuoi dati\n"
    "/trascrivi – trascrivi l'audio a cui rispondi\n"
    "/impostazioni – formato (testo, .txt, .srt, .vtt, con i tempi), hashtag e altro\n"
    "/vocabolario – le parole che mi hai insegnato correggendo\n\n"
    "Sotto il messaggio di avanzamento c'è il pulsante <b>Annulla</b>."
)
PRIVACY = (
    "<b>Privacy</b>\n"
    "• Conservo l'audio che mi mandi, la trascrizione e le tue eventuali correzioni.\n"
    "• L'audio delle trascrizioni non corrette viene cancellato dopo {days} giorni; "
    "il testo resta finché non lo cancelli.\n"
    "• L'audio con una correzione (o confermato con ✅ Giusto) diventa materiale di "
    "addestramento per migliorare il modello. "
    "Le tue correzioni valgono solo per l'audio che mi hai mandato tu per primo.\n"
    "{vocabulary}"
    "• Con /forget cancelli tutto: audio, trascrizioni, correzioni e vocabolario, anche quelli "
    "di un audio che sto ancora trascrivendo, e i dati che un addestramento futuro avrebbe usato.\n"
    "• <b>Il modello</b>: ogni addestramento riparte dal modello di base con le correzioni che "
    "esistono in quel momento. Dopo /forget, il modello in servizio (se ha imparato anche dalle "
    "tue correzioni) resta finché il prossimo addestramento non ne promuove uno nuovo, che non "
    "le ha mai viste; i modelli addestrati con i tuoi dati non tornano più in servizio, "
    "nemmeno con /rollback.\n"
    "• <b>Cosa non posso cancellare</b>: i messaggi della chat restano su Telegram finché non "
    "li cancelli tu."
)
# The vocabulary's line of /privacy, shown while WHISPER_IT_PERSONAL_VOCABULARY is on.
PRIVACY_VOCABULARY = (
    "• <b>Vocabolario</b>: dalle tue correzioni imparo le parole nuove (nomi, luoghi, termini) "
    "e le uso solo per trascrivere i tuoi audio; /vocabolario le mostra e le cancella "
    "(le correzioni restano).\n"
)
FORGET_CONFIRM = (
    "Vuoi davvero cancellare <b>tutti</b> i tuoi dati (audio, trascrizioni e correzioni)? "
    "Non si può annullare."
)
FORGET_YES = "Sì, cancella tutto"
FORGET_NO = "No"
FORGET_DONE = (
    "🗑 Fatto: ho cancellato {transcriptions} trascrizioni, {corrections} correzioni "
    "e {audio} file audio."
)
FORGET_CANCELLED = "Ok, non ho cancellato niente."
ADMIN_ANSWERED_PRIVATELY = "🔒 Ti ho risposto in privato."
ADMIN_PRIVATE_UNREACHABLE = (
    "🔒 Ai comandi admin rispondo solo in privato: scrivimi prima in privato (/start), "
    "poi ripeti il comando."
)
FORGET_NOT_YOURS = "Questi pulsanti sono per chi ha chiesto /forget: usa /forget tu stesso."
NOT_ADMIN = "Questo comando è riservato agli amministratori."
TEXT_HINT = (
    "Mandami un messaggio vocale, un file audio/video o un link di YouTube da trascrivere. "
    "Per correggere una trascrizione, rispondi al mio messaggio con il testo giusto."
)
TRANSCRIBE_HOW = "Usa /trascrivi rispondendo a un messaggio vocale, audio o video."
UNSUPPORTED_FILE = "Questo tipo di file non è supportato: mandami un audio o un video."
UNSUPPORTED_MESSAGE = (
    "Non so cosa farne: mandami un messaggio vocale, un file audio/video o un link di YouTube."
)
FILE_TOO_BIG = "Il file è troppo grande: il massimo è {max_mb} MB."
AUDIO_TOO_LONG = "L'audio è troppo lungo: il massimo è {max_duration}."
RATE_LIMITED = "Stai inviando troppi messaggi: riprova tra {seconds} secondi."
# Sent on behalf of a channel or a group (anonymous admins, "invia come"): Telegram hides
# who sent it, so nothing can be theirs (bot/handlers/common.py).
SENT_AS_CHAT = (
    "Non posso lavorare con i messaggi inviati a nome di un canale o di un gruppo: "
    "invia il messaggio a tuo nome."
)
# A button press whose data no button of this bot carries (forged, or from an old version).
BUTTON_UNKNOWN = "Questo pulsante non è valido."
TOO_MANY_PENDING = (
    "Hai già {count} richieste in corso: aspetta che finiscano prima di mandarne altre."
)
QUEUE_FULL = "Sono molto occupato in questo momento: riprova tra qualche minuto."
# A message someone already asked for (several members' /trascrivi of one note).
ALREADY_QUEUED = "Questo messaggio è già in coda: la trascrizione arriva qui tra poco."
ALREADY_DONE = "Ho già trascritto questo messaggio: la trascrizione è nella mia risposta."
CORRECTION_SAVED = "✅ Grazie! Ho salvato la correzione: mi aiuterà a migliorare."
CORRECTION_SAVED_LONG = (
    "✅ Grazie! Ho salvato la correzione. L'audio dura più di {seconds} secondi: "
    "la userò per misurare la qualità, non per l'addestramento."
)
CORRECTION_UNCHANGED = "Il testo è uguale alla trascrizione: non c'è niente da correggere."
CORRECTION_NOT_TRANSCRIPT = (
    "Questo messaggio non è una trascrizione. Per correggere, rispondi al messaggio "
    "che contiene la trascrizione."
)
CORRECTION_NOT_OWNER = "Solo chi ha registrato l'audio può correggerne la trascrizione."
CORRECTION_TOO_LONG = "La correzione è troppo lunga (massimo {max_chars} caratteri)."
CORRECTION_CONTROL_TOKEN = (
    "La correzione contiene un codice riservato al modello (testo tra &lt;| e |&gt;, "
    "come &lt;|endoftext|&gt;): scrivi solo le parole pronunciate."
)
CORRECTION_EMPTY = "La correzione è vuota: scrivi il testo giusto della trascrizione."
INTERNAL_ERROR = "😔 Si è verificato un errore imprevisto. Gli amministratori sono stati avvisati."
DOWNLOAD_FAILED = "Non sono riuscito a scaricare il file da Telegram: riprova."
TELEGRAM_FILE_TOO_BIG = "Il file supera il limite di download di Telegram (20 MB)."
MODEL_SWAPPED = "Modello aggiornato: {name}"
# To the admins, at most once per hour per process (bot/ops/throttled_alert.py).
YOUTUBE_BLOCKED_ALERT = (
    "YouTube chiede a questo server di «confermare di non essere un bot»: i link di "
    "YouTube falliscono. Cosa fare: esporta i cookie di un browser con un account YouTube "
    "(formato cookies.txt) e indica il file in <code>WHISPER_IT_YTDLP_COOKIES_FILE</code> "
    "(se è già impostato, i cookie sono scaduti: esportali di nuovo); aggiorna yt-dlp "
    "(<code>pip install -U yt-dlp</code>); se non basta, l'indirizzo IP del server è "
    "bloccato da YouTube."
)

MODEL_BROKEN = (
    "⚠️ Il modello <code>{spec}</code> non si carica: continuo con quello in uso e riprovo "
    "più tardi.\n<code>{error}</code>"
)

# --- training contributions (admin) and user ids typed by admins ---
CONTRIBUTORS_HEADER = (
    "<b>Contributi all'addestramento</b>\n"
    "Campioni: {samples} ({train} di addestramento + {eval} di valutazione), "
    "in quarantena: {quarantined}"
)
CONTRIBUTOR_LINE = (
    "{rank}. <code>{user_id}</code> {who}: {samples} campioni ({train}+{eval}), "
    "{seconds} s, {corrections} correzioni"
)
CONTRIBUTOR_QUARANTINED = ", {quarantined} in quarantena"
CONTRIBUTORS_MORE = "… e altri {count} utenti (elenco completo: whisper-it samples contributors)"
CONTRIBUTORS_EMPTY = "Nessuno ha ancora corretto una trascrizione."
CONTRIBUTORS_FOOTER = (
    "Per togliere i contributi di un utente: /remove_contributions ID (-1 per i campioni importati)"
)
REMOVE_CONTRIBUTIONS_USAGE = (
    "Uso: /remove_contributions ID, dove ID è il numero dell'utente (lo trovi in /contributors)."
)
USER_ID_NOT_A_NUMBER = "«{value}» non è un ID utente: scrivi solo cifre, per esempio 123456789."
USER_ID_NOT_POSITIVE = (
    "Gli ID degli utenti Telegram sono numeri maggiori di zero (-1: i campioni importati)."
)
USER_ID_TOO_BIG = "Questo numero è troppo grande per essere l'ID di un utente Telegram."
CONTRIBUTIONS_REMOVED = (
    "🗑 Tolti i contributi dell'utente <code>{user_id}</code>: {corrections} correzioni, "
    "{samples} campioni; quarantene risolte: {quarantined}."
)
CONTRIBUTIONS_NONE = (
    "L'utente <code>{user_id}</code> non ha corretto niente: non c'è nulla da togliere."
)

# --- cancelling a job ("Annulla" under its status message) ---
JOB_CANCELLED = "✖️ Annullata."
CANCEL_ANSWER = "Annullata."
CANCEL_NOT_YOURS = "Solo chi ha chiesto la trascrizione può annullarla."
CANCEL_TOO_LATE = "Troppo tardi: questa trascrizione è già conclusa."

# --- the "✅ Giusto" button under a transcript ---
CONFIRM_SAVED = "Grazie! Trascrizione confermata: mi aiuterà a migliorare."
CONFIRM_ALREADY = "Hai già confermato questa trascrizione."
CONFIRM_NOT_YOURS = "Solo chi ha inviato l'audio può confermare la trascrizione."
CONFIRM_CORRECTED = "Hai già corretto questa trascrizione: vale la tua correzione."
CONFIRM_GONE = "Questa trascrizione non c'è più."
CONFIRM_NOT_USABLE = "Questa trascrizione non può servire all'addestramento."

# --- /impostazioni (per-chat settings) ---
SETTINGS_TITLE = "⚙️ <b>Impostazioni di questa chat</b>"
SETTINGS_OUTPUT = "Formato della trascrizione: <b>{output}</b>"
SETTINGS_HASHTAGS = "Hashtag: <b>{state}</b>"
SETTINGS_TRANSCRIBE_ALL = "Trascrivi tutti i vocali del gruppo: <b>{state}</b>"
SETTINGS_ADMINS_ONLY = "Solo gli amministratori cambiano le impostazioni: <b>{state}</b>"
SETTINGS_HINT = "Tocca un pulsante per cambiare."
SETTINGS_ON = "sì"
SETTINGS_OFF = "no"
SETTINGS_SAVED = "Impostazione salvata."
SETTINGS_ONLY_ADMINS = "Solo gli amministratori del gruppo possono cambiare le impostazioni."
SETTINGS_GROUP_ONLY = "Questa impostazione vale solo nei gruppi."
OUTPUT_LABELS = {
    "text": "testo",
    "txt": "file .txt",
    "srt": "sottotitoli .srt",
    "vtt": "sottotitoli .vtt",
    "timestamps": "testo con i tempi",
}

# --- /vocabolario (a user's corrected words, issue 21) ---
VOCABULARY_SHOW = (
    "📖 <b>Il tuo vocabolario</b> ({count} parole, le più recenti prima):\n{words}\n\n"
    "Sono le parole nuove delle tue correzioni: le uso per trascrivere meglio i tuoi "
    "prossimi audio, e solo i tuoi. Cancellarle non cancella le correzioni."
)
VOCABULARY_EMPTY = (
    "📖 Il tuo vocabolario è vuoto. Quando correggi una trascrizione (rispondendo al mio "
    "messaggio), imparo le parole nuove (nomi, luoghi, termini tecnici) e le uso per "
    "trascrivere meglio i tuoi prossimi audio."
)
VOCABULARY_CLEAR_BUTTON = "🗑 Cancella il vocabolario"
VOCABULARY_CLEARED = (
    "🗑 Vocabolario cancellato ({count} parole). Le tue correzioni restano: "
    "per cancellare tutto usa /forget."
)
VOCABULARY_OFF = "Il vocabolario personale non è attivo su questo bot."
VOCABULARY_PRIVATE_ONLY = (
    "📖 Il vocabolario è personale: scrivi /vocabolario in chat privata con me."
)
VOCABULARY_USAGE = (
    "Scrivi /vocabolario per vedere le tue parole, /vocabolario cancella per cancellarle."
)
VOCABULARY_NOT_YOURS = "Questo pulsante è per chi ha chiesto /vocabolario."
