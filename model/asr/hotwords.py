"""A user's vocabulary: the words their corrections taught, as faster-whisper ``hotwords``.

A correction is untrusted text. From it only plain words are taken: the words the user
inserted or substituted relative to the bot's transcript (a word-level diff), without
Italian function words, letters (any script, with accents), digits, inner hyphens; at
least one letter; at most ``MAX_WORD_CHARS`` long; at most ``MAX_WORDS_PER_CORRECTION``
from one correction. A correction holding a Whisper control token (``<|...|>``) teaches
nothing. The prompt built from the words is bounded too (``MAX_PROMPT_CHARS``), so it can
never crowd the 448-token decoder context (faster-whisper cuts hotwords at 223 tokens).

Nothing here touches storage or the model: ``storage.vocabulary`` keeps the words,
``bot.vocabulary`` wires both.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher

MAX_WORD_CHARS = 32
MAX_WORDS_PER_CORRECTION = 12
# ~100-150 tokens of Italian: well under half of the decoder's context.
MAX_PROMPT_CHARS = 400
_CONTROL_TOKEN = re.compile(r"<\|.*?\|>", re.DOTALL)
# A word: letters/digits with inner hyphens ("Emilia-Romagna"); apostrophes split elisions.
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")

# Italian function words (articles, prepositions and their contractions, pronouns,
# auxiliaries, conjunctions, frequent adverbs): they carry nothing a user would teach.
_STOP_WORDS_TEXT = """
    a ad agli ai al all alla alle allo anche ancora avere aveva avevo c che chi ci come con
    cosa cui d da dagli dai dal dall dalla dalle dallo degli dei del dell della delle dello
    di dove e è ed era erano essere gli ha hai hanno ho i il in io l la le lei li lo loro lui
    ma me mi mia mie miei mio ne negli nei nel nell nella nelle nello no noi non nostra
    nostro o od per perché più poi quale quali quando quanto quella quelle quelli quello
    questa queste questi questo se sei si sia siamo siete sono su sua sue sugli sui sul
    sull sulla sulle sullo suo suoi te ti tra fra tu tua tue tuo tuoi un una uno vi voi già
    molto poco tutto tutti tutta tutte ogni così sì qui qua lì là ora oggi ieri domani
    sempre mai solo bene male fa fare stato stata sta stanno sto ecco oppure anzi mentre
"""
STOP_WORDS: frozenset[str] = frozenset(_STOP_WORDS_TEXT.split())


def _words(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFC", text))


def _keep(word: str) -> bool:
    return (
        len(word) <= MAX_WORD_CHARS
        and any(char.isalpha() for char in word)
        and word.lower() not in STOP_WORDS
        and len(word) > 1
    )


def corrected_words(transcript: str, correction: str) -> list[str]:
    """The words ``correction`` inserts or substitutes relative to ``transcript``, in the
    order they appear, once each (case-insensitively), without function words, as the user
    wrote them; none at all if the correction holds a control token."""
    if _CONTROL_TOKEN.search(correction) or "<|" in correction or "|>" in correction:
        return []
    heard = [word.lower() for word in _words(transcript)]
    written = _words(correction)
    matcher = SequenceMatcher(None, heard, [word.lower() for word in written], autojunk=False)
    found: list[str] = []
    seen: set[str] = set()
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag not in ("replace", "insert"):
            continue
        for word in written[j1:j2]:
            if _keep(word) and word.lower() not in seen:
                seen.add(word.lower())
                found.append(word)
    return found[:MAX_WORDS_PER_CORRECTION]


def safe_words(words: Iterable[str]) -> list[str]:
    """``words`` that are plain words by the rules above (stored ones are re-checked before
    they reach the model: a row written by an older version or by hand proves nothing)."""
    kept: list[str] = []
    for word in words:
        if _WORD.fullmatch(word) and _keep(word):
            kept.append(word)
    return kept


def remember_words(vocabulary: Sequence[str], new: Sequence[str], *, cap: int) -> list[str]:
    """``vocabulary`` (most recent first) after a correction taught ``new``: the new words
    first, a word taught again moves to the front, at most ``cap`` words."""
    merged: list[str] = []
    seen: set[str] = set()
    for word in [*new, *vocabulary]:
        if word.lower() not in seen:
            seen.add(word.lower())
            merged.append(word)
    return merged[: max(0, cap)]


def hotwords_prompt(words: Sequence[str]) -> str | None:
    """The ``hotwords`` string for ``words`` (most important first), cut to
    ``MAX_PROMPT_CHARS`` at a word boundary; None when there are none."""
    prompt = ""
    for word in safe_words(words):
        candidate = f"{prompt} {word}" if prompt else word
        if len(candidate) > MAX_PROMPT_CHARS:
            break
        prompt = candidate
    return prompt or None


def vocabulary_key(hotwords: str | None) -> str | None:
    """A fingerprint of the hotwords a transcript was made with (None: none), so that a
    stored transcript is reused only for a request decoded with the very same words."""
    if not hotwords:
        return None
    return hashlib.sha256(hotwords.encode("utf-8")).hexdigest()
