"""Corrections: a user's reply to a transcript becomes training text for its audio.

Whether a saved correction labels a training sample is decided in ``storage.labels``
(the first sender's correction labels a clip; disagreeing senders quarantine it). The
reply to the user is the same either way, so it never tells anyone that somebody else
sent the bot the same audio.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence

from bot import messages
from bot.formatting import TITLE_MARK
from bot.vocabulary import PersonalVocabulary
from storage.confirmations import ConfirmOutcome, confirm_transcript
from storage.labels import has_control_token
from storage.repository import IMPORT_USER_ID
from storage.unit_of_work import Database

# A line of the "testo con i tempi" output (``bot.output_formats.timestamped_text``).
_TIMESTAMPED_LINE = re.compile(r"\[(?:\d+:)?\d{1,2}:\d{2}\]\s*(.*)")
# What a transcript message adds after the text (``formatting.transcript_messages``): a
# paragraph of hashtags (maybe clipped) and a link's title.
_HASHTAGS_PARAGRAPH = re.compile(r"#\w+(?:\s+#\w+)*\s*…?")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def without_decorations(text: str) -> str:
    """A correction copied whole from a transcript message (Telegram's "Copy" takes it
    all), without the hashtags and title paragraphs the bot put under the text: they are
    not speech, and kept they taught the model and the user's vocabulary the tags."""
    paragraphs = _PARAGRAPH_BREAK.split(text.strip())
    while len(paragraphs) > 1 and _is_decoration(paragraphs[-1].strip()):
        paragraphs.pop()
    return "\n\n".join(paragraphs)


def _is_decoration(paragraph: str) -> bool:
    return bool(_HASHTAGS_PARAGRAPH.fullmatch(paragraph)) or paragraph.startswith(TITLE_MARK)


def without_timestamps(text: str) -> str:
    """A correction copied from the timestamped output, its "[01:05]" stamps removed (they
    are not speech: kept, they trained the model to say "01 05"); other text unchanged."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    stamped = [_TIMESTAMPED_LINE.fullmatch(line) for line in lines]
    if not lines or not all(stamped):
        return text
    return " ".join(match.group(1) for match in stamped if match and match.group(1))


class CorrectionOutcome(enum.Enum):
    SAVED = "saved"
    SAVED_NOT_FOR_TRAINING = "saved_not_for_training"
    NOT_A_TRANSCRIPT = "not_a_transcript"
    NOT_OWNER = "not_owner"
    TOO_LONG = "too_long"
    EMPTY = "empty"
    UNCHANGED = "unchanged"
    CONTROL_TOKEN = "control_token"
    # In a group, a reply unlike the transcript: people talking about it, not to the bot.
    CONVERSATION = "conversation"


# How alike (difflib's ratio of the normalised texts) a group reply and the transcript
# must be to be taken as its correction without mentioning the bot. A correction keeps
# most of the text ("alle otto" -> "alle nove" 0.88, "dal locunista" -> "dall'oculista"
# 0.93); replies to the speaker share little ("sì, anche io" 0.29, "vero!" 0.14).
GROUP_CORRECTION_MIN_SIMILARITY = 0.5


def resembles(transcript: str, reply: str) -> bool:
    """Whether ``reply`` reads as a corrected ``transcript`` rather than an answer to it."""
    import difflib

    from model.asr.normalize import normalize_text

    a, b = normalize_text(transcript), normalize_text(reply)
    ratio = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    return ratio >= GROUP_CORRECTION_MIN_SIMILARITY


def without_mention(text: str, bot_username: str) -> str:
    """A group correction that mentions the bot, the mention taken out (it is no speech)."""
    if not bot_username:
        return text
    return re.sub(rf"@{re.escape(bot_username)}\b", " ", text, flags=re.IGNORECASE)


class CorrectionService:
    """A user's reply to a transcript message becomes a correction (the latest counts).

    Audio longer than ``training_max_seconds`` (Whisper's 30 s window) is not used for
    training, because its text cannot be aligned to one window without timestamps we
    trust; its corrections are kept, for the record and for evaluation.
    """

    def __init__(
        self,
        db: Database,
        *,
        max_chars: int,
        training_max_seconds: float,
        vocabulary: PersonalVocabulary | None = None,
    ) -> None:
        self.db = db
        self.max_chars = max_chars
        self.training_max_seconds = training_max_seconds
        # Learns the words a correction taught, for the user's next notes (issue 21).
        self.vocabulary = vocabulary

    def record(
        self,
        *,
        chat_id: int,
        replied_message_id: int,
        user_id: int,
        text: str,
        group: bool,
        mentioned: bool = False,
    ) -> CorrectionOutcome:
        """``group``: sent in a group, where a reply unlike the transcript is conversation
        unless it ``mentioned`` the bot."""
        from model.asr.normalize import normalize_text
        from storage import repository

        text = without_timestamps(without_decorations(text)).strip()
        if not normalize_text(text):  # "👍", "...": no word to train on
            return CorrectionOutcome.EMPTY
        if len(text) > self.max_chars:
            return CorrectionOutcome.TOO_LONG
        if has_control_token(text):
            return CorrectionOutcome.CONTROL_TOKEN
        with self.db.unit_of_work() as uow:
            session = uow.session
            row = repository.find_transcription_by_reply(
                session, chat_id=chat_id, message_id=replied_message_id
            )
            if row is None:
                return CorrectionOutcome.NOT_A_TRANSCRIPT
            latest = repository.latest_correction(session, row.id)
            current = latest.text if latest else row.text
            if group and not mentioned and not any(resembles(t, text) for t in {current, row.text}):
                return CorrectionOutcome.CONVERSATION
            if group and row.user_id != user_id:
                return CorrectionOutcome.NOT_OWNER
            if normalize_text(current) == normalize_text(text):
                return CorrectionOutcome.UNCHANGED
            repository.touch_user(session, user_id)
            repository.add_correction(session, transcription_id=row.id, user_id=user_id, text=text)
            if self.vocabulary is not None:
                self.vocabulary.learn(
                    session, user_id=user_id, transcript=row.text, correction=text
                )
            uow.commit()
            too_long = (row.audio_duration or 0.0) > self.training_max_seconds
        return CorrectionOutcome.SAVED_NOT_FOR_TRAINING if too_long else CorrectionOutcome.SAVED

    def confirm(
        self, *, transcription_id: int, chat_id: int | None, user_id: int
    ) -> ConfirmOutcome:
        """The "✅ Giusto" button: the transcript becomes its sender's confirmed label
        (once; only clips training can use, by the rule above)."""
        with self.db.unit_of_work() as uow:
            outcome = confirm_transcript(
                uow.session,
                transcription_id=transcription_id,
                chat_id=chat_id,
                user_id=user_id,
                max_seconds=self.training_max_seconds,
            )
            if outcome is ConfirmOutcome.CONFIRMED:
                uow.commit()
        return outcome


# Telegram user ids have at most 52 significant bits (Bot API: "fits in a double").
MAX_TELEGRAM_USER_ID = 2**52
_ID_DIGITS = len(str(MAX_TELEGRAM_USER_ID))
# ASCII only: int() also reads "١٢٣" and " 12_3 ", which nobody means as an id.
_USER_ID = re.compile(r"[+-]?[0-9]+")
_ECHO_CHARS = 20


class UserIdError(ValueError):
    """An admin typed something that is not one Telegram user id; the message says why,
    in Italian, as plain text (escape it for HTML)."""


def parse_user_id(args: Sequence[str]) -> int:
    """The one Telegram user id in ``args`` (a command's words), or ``UserIdError``; -1
    names the imported samples (their system user)."""
    if len(args) != 1:
        raise UserIdError(messages.REMOVE_CONTRIBUTIONS_USAGE)
    value = args[0].strip()
    if not _USER_ID.fullmatch(value):
        echo = value[:_ECHO_CHARS] + ("…" if len(value) > _ECHO_CHARS else "")
        raise UserIdError(messages.USER_ID_NOT_A_NUMBER.format(value=echo))
    if value == str(IMPORT_USER_ID):  # the samples ``samples import`` added
        return IMPORT_USER_ID
    digits = value.lstrip("+-").lstrip("0")
    if value.startswith("-") or not digits:
        raise UserIdError(messages.USER_ID_NOT_POSITIVE)
    # Length first: int() of a 5,000-digit string is refused by Python itself (ValueError).
    if len(digits) > _ID_DIGITS or int(digits) > MAX_TELEGRAM_USER_ID:
        raise UserIdError(messages.USER_ID_TOO_BIG)
    return int(digits)
