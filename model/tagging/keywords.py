"""Offline keyword tags for Italian speech (YAKE): the fallback when text2tags cannot be
loaded, and the tagger of the tests. Single words, and word pairs only when they recur or
name someone; the greetings, fillers and verbs of spoken Italian are left out."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

from model.tagging.base import DEFAULT_MAX_TAGS

if TYPE_CHECKING:
    import yake

KEYWORD_LANGUAGE = "it"
KEYWORD_MAX_NGRAM = 2
# YAKE candidates inspected before filtering; filters drop many of them.
KEYWORD_CANDIDATES = 40
KEYWORD_DEDUP_THRESHOLD = 0.8
MIN_KEYWORD_CHARS = 3
# A two-word keyword must recur (or be a capitalised name) to beat single words:
# YAKE rates one-off word pairs of unpunctuated speech far too high.
MIN_BIGRAM_OCCURRENCES = 2

# Words YAKE's Italian list lacks that are noise in spoken Italian: greetings, fillers,
# discourse markers, vocatives, vague adverbs.
SPEECH_STOP_WORDS = frozenset(
    " ".join(
        (
            "buongiorno buonasera buonanotte ciao salve arrivederci prego scusa scusate scusi",
            "allora comunque insomma tipo praticamente sostanzialmente diciamo vabbè vabbe okay ok",
            "sì si beh boh mah ehm eh oh ah uh mh mhm",
            "piuttosto davvero veramente già qua lì là domani stamattina stasera stanotte",
            "entro presso tramite qualcosa parlo parla parlare parlato andati sentito",
            "cose volte modo raccomando ragazzi ragazze amici signori signore gente",
            "cinque sei sette otto nove dieci mille",
            "grande grandi piccolo piccola bello bella buono buona nuovo nuova",
        )
    ).split()
)
# First-person plural verbs and gerunds ("prepariamo", "parlando") are rarely topics.
_VERB_LIKE_SUFFIXES = ("iamo", "ando", "endo")
_MIN_VERB_LIKE_CHARS = 6

# Elided articles and prepositions ("l'", "dell'", "un'", "quest'") glued to the next word.
_ELISION_RE = re.compile(r"\b[^\W\d_]{1,5}['’`´](?=[^\W\d_])")


class KeywordTagger:
    """Offline keywords for Italian speech with YAKE: single words and recurring word pairs."""

    name = "keywords"

    def __init__(self, *, max_tags: int = DEFAULT_MAX_TAGS) -> None:
        import yake

        self._max_tags = max_tags
        italian = yake.KeywordExtractor(lan=KEYWORD_LANGUAGE).stopword_set
        self._stop_words = frozenset(w.lower() for w in italian) | SPEECH_STOP_WORDS
        self._extractor: yake.KeywordExtractor = yake.KeywordExtractor(
            lan=KEYWORD_LANGUAGE,
            n=KEYWORD_MAX_NGRAM,
            dedup_lim=KEYWORD_DEDUP_THRESHOLD,
            top=KEYWORD_CANDIDATES,
            stopwords=set(self._stop_words),
        )

    def tags(self, text: str) -> list[str]:
        text = _ELISION_RE.sub("", unicodedata.normalize("NFC", text)).strip()
        if not text or self._max_tags <= 0:
            return []
        word_counts: dict[str, int] = {}
        for word in re.findall(r"[^\W_]+", text.lower()):
            word_counts[word] = word_counts.get(word, 0) + 1
        lowered = " ".join(re.findall(r"[^\W_]+", text.lower()))

        candidates = self._extractor.extract_keywords(text)
        # YAKE: lower is better. Favour terms the speaker keeps coming back to.
        ranked = sorted(
            candidates,
            key=lambda item: item[1] / _occurrences(item[0].lower(), word_counts, lowered),
        )
        tags: list[str] = []
        used_words: set[str] = set()
        for keyword, _score in ranked:
            words = keyword.split()
            lower_words = [w.lower() for w in words]
            if not self._acceptable(words, lowered):
                continue
            if used_words.intersection(lower_words):
                continue  # "roma" after "derby roma": redundant
            tags.append(" ".join(lower_words))
            used_words.update(lower_words)
            if len(tags) >= self._max_tags:
                break
        return tags

    def _acceptable(self, words: list[str], lowered_text: str) -> bool:
        for word in words:
            lower = word.lower()
            if lower in self._stop_words or len(lower) < MIN_KEYWORD_CHARS:
                return False
            if not any(ch.isalpha() for ch in lower):
                return False
            if (
                word.islower()
                and len(lower) >= _MIN_VERB_LIKE_CHARS
                and lower.endswith(_VERB_LIKE_SUFFIXES)
            ):
                return False
        if len(words) > 1:
            is_name = all(word[:1].isupper() for word in words)
            phrase = " ".join(word.lower() for word in words)
            if not is_name and _count_phrase(phrase, lowered_text) < MIN_BIGRAM_OCCURRENCES:
                return False
        return True


def _count_phrase(phrase: str, lowered_text: str) -> int:
    return len(re.findall(rf"(?<!\w){re.escape(phrase)}(?!\w)", lowered_text))


def _occurrences(keyword: str, word_counts: dict[str, int], lowered_text: str) -> int:
    if " " in keyword:
        return max(1, _count_phrase(keyword, lowered_text))
    return max(1, word_counts.get(keyword, 1))
