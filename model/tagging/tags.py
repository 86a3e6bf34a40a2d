"""Hashtags for transcripts: text2tags (a T5 seq2seq model) with an offline keyword fallback.

`load_tagger` picks the implementation; taggers return raw tags, best first, and
`format_hashtags` turns them into Telegram-valid ``#hashtags``.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from model.tagging.base import (
    DEFAULT_MAX_TAGS,
    NullTagger,
    Tagger,
    TaggerChoice,
    TaggerUnavailable,
)

logger = logging.getLogger(__name__)

DEFAULT_TEXT2TAGS_MODEL = "efederici/text2tags"
# How the model was trained (NOTES §7): a T5 summarisation prefix and these generation settings.
TEXT2TAGS_PREFIX = "summarize: "
DEFAULT_MAX_INPUT_TOKENS = 512
DEFAULT_NUM_BEAMS = 4
DEFAULT_MAX_LENGTH = 20
NO_REPEAT_NGRAM_SIZE = 2
# Long transcripts are tagged chunk by chunk; more chunks cost time for little gain.
MAX_CHUNKS = 4
# One quick request to the Hub before a download: huggingface_hub retries a failed lookup
# with back-off for ~45 s, which would stall start-up on an offline machine.
HUB_PROBE_TIMEOUT_S = 5.0

MAX_HASHTAG_CHARS = 50
_TAG_SPLIT_RE = re.compile(r"\s*,\s*")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?…])\s+")
_APOSTROPHES = "'’‘`´ʼ"
_SEPARATOR_CATEGORIES = ("Z", "Pd")  # spaces and dashes


class Text2TagsTagger:
    """`efederici/text2tags` (or any T5-style seq2seq model) through transformers.

    The model is loaded once, lazily on first use or eagerly with `load`; loading is
    thread-safe. Long texts are split into chunks of at most `max_input_tokens`, at sentence
    boundaries where possible; the first `MAX_CHUNKS` chunks are tagged in one batch and
    their tags merged by how many chunks produced them.
    """

    def __init__(
        self,
        model: str = DEFAULT_TEXT2TAGS_MODEL,
        *,
        device: str = "cpu",
        local_files_only: bool = False,
        max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS,
        num_beams: int = DEFAULT_NUM_BEAMS,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        self.model_id = model
        self.name = f"text2tags:{model}"
        self._device = device
        self._local_files_only = local_files_only
        self._max_input_tokens = max_input_tokens
        self._num_beams = num_beams
        self._max_length = max_length
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._model: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Load tokenizer and model now; raise `TaggerUnavailable` if that is impossible."""
        with self._lock:
            if self._model is None:
                self._tokenizer, self._model = self._load()

    def _load(self) -> tuple[Any, Any]:
        try:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        except ImportError as exc:
            raise TaggerUnavailable(f"transformers is not installed: {exc}") from exc

        def from_pretrained(local_only: bool) -> tuple[Any, Any]:
            tokenizer = AutoTokenizer.from_pretrained(self.model_id, local_files_only=local_only)
            model = AutoModelForSeq2SeqLM.from_pretrained(
                self.model_id, local_files_only=local_only
            )
            return tokenizer, model

        # Loading code raises many types (OSError, ValueError, EnvironmentError, ...);
        # to the caller they all mean "no text2tags here".
        try:
            # The cache first, so a cached model never touches the network.
            tokenizer, model = from_pretrained(local_only=True)
        except Exception as cached_exc:
            if self._local_files_only or Path(self.model_id).exists():
                raise TaggerUnavailable(
                    f"cannot load {self.model_id!r} from local files: {cached_exc}"
                ) from cached_exc
            self._probe_hub()
            try:
                tokenizer, model = from_pretrained(local_only=False)
            except Exception as exc:
                raise TaggerUnavailable(f"cannot load {self.model_id!r}: {exc}") from exc
        try:
            model.to(self._device)
        except Exception as exc:
            raise TaggerUnavailable(f"cannot move {self.model_id!r} to {self._device}") from exc
        model.eval()
        logger.info("text2tags model %s loaded on %s", self.model_id, self._device)
        return tokenizer, model

    def _probe_hub(self) -> None:
        try:
            from huggingface_hub import HfApi

            HfApi().model_info(self.model_id, timeout=HUB_PROBE_TIMEOUT_S)
        except Exception as exc:
            raise TaggerUnavailable(
                f"{self.model_id!r} is not cached and the Hub cannot provide it: {exc}"
            ) from exc

    def tags(self, text: str) -> list[str]:
        if not text.strip():
            return []
        if self._model is None:
            self.load()
        chunks = self._chunks(text.strip())
        return merge_chunk_tags([parse_tags(output) for output in self._generate(chunks)])

    def _chunks(self, text: str) -> list[str]:
        """Split `text` into pieces that fit the encoder with the prefix, whole sentences first."""
        tokenizer = self._tokenizer
        prefix_len = len(tokenizer(TEXT2TAGS_PREFIX, add_special_tokens=False)["input_ids"])
        # Room for the prefix and the end-of-sequence token.
        budget = max(1, self._max_input_tokens - prefix_len - 1)
        sentences = [s for s in _SENTENCE_END_RE.split(text) if s]
        encoded = tokenizer(sentences, add_special_tokens=False)["input_ids"]

        chunks: list[str] = []
        current: list[str] = []
        current_len = 0
        for sentence, ids in zip(sentences, encoded, strict=True):
            if current and current_len + len(ids) > budget:
                chunks.append(" ".join(current))
                current, current_len = [], 0
            if len(ids) > budget:
                # A sentence longer than the budget (unpunctuated speech): cut it by tokens.
                for start in range(0, min(len(ids), budget * MAX_CHUNKS), budget):
                    chunks.append(tokenizer.decode(ids[start : start + budget]))
            else:
                current.append(sentence)
                current_len += len(ids)
            if len(chunks) >= MAX_CHUNKS:
                break
        if current:
            chunks.append(" ".join(current))
        return chunks[:MAX_CHUNKS]

    def _generate(self, chunks: Sequence[str]) -> list[str]:
        import torch

        inputs = self._tokenizer(
            [TEXT2TAGS_PREFIX + chunk for chunk in chunks],
            max_length=self._max_input_tokens,
            truncation=True,
            padding=True,
            return_tensors="pt",
        ).to(self._device)
        with torch.inference_mode():
            output_ids = self._model.generate(
                **inputs,
                num_beams=self._num_beams,
                no_repeat_ngram_size=NO_REPEAT_NGRAM_SIZE,
                max_length=self._max_length,
            )
        return self._tokenizer.batch_decode(output_ids, skip_special_tokens=True)


def parse_tags(output: str) -> list[str]:
    """Split one text2tags output ("roma, pizza") into tags, dropping blanks and repeats."""
    tags: list[str] = []
    seen: set[str] = set()
    for raw in _TAG_SPLIT_RE.split(output):
        tag = raw.strip().strip(".;:")
        key = tag.lower()
        if tag and key not in seen:
            seen.add(key)
            tags.append(tag)
    return tags


def merge_chunk_tags(per_chunk: Sequence[Sequence[str]]) -> list[str]:
    """Merge the tags of several chunks: most chunks first, then first appearance."""
    counts: dict[str, int] = {}
    first: dict[str, str] = {}  # key -> the spelling seen first
    for tags in per_chunk:
        for key in dict.fromkeys(tag.lower() for tag in tags):
            counts[key] = counts.get(key, 0) + 1
        for tag in tags:
            first.setdefault(tag.lower(), tag)
    # dicts keep insertion order and sorted() is stable, so ties keep first appearance.
    return [first[key] for key in sorted(counts, key=lambda key: -counts[key])]


def load_tagger(
    choice: TaggerChoice,
    *,
    model: str = DEFAULT_TEXT2TAGS_MODEL,
    max_tags: int = DEFAULT_MAX_TAGS,
    device: str = "cpu",
    local_files_only: bool = False,
) -> Tagger:
    """Build the tagger the settings ask for.

    "auto" loads text2tags now and falls back to keywords if it cannot; "text2tags" raises
    `TaggerUnavailable` instead. The model is loaded eagerly here so a missing model shows
    up at start-up, not on a user's first message.
    """
    if choice == "off":
        tagger: Tagger = NullTagger()
    elif choice == "keywords":
        tagger = _keywords(max_tags)
    elif choice in ("auto", "text2tags"):
        text2tags = Text2TagsTagger(model, device=device, local_files_only=local_files_only)
        try:
            text2tags.load()
            tagger = text2tags
        except TaggerUnavailable as exc:
            if choice == "text2tags":
                raise
            logger.warning("text2tags unavailable, using keyword tags instead: %s", exc)
            tagger = _keywords(max_tags)
    else:
        raise ValueError(f"unknown tagger choice: {choice!r}")
    logger.info("tagger: %s", tagger.name)
    return tagger


def _keywords(max_tags: int) -> Tagger:
    from model.tagging.keywords import KeywordTagger

    return KeywordTagger(max_tags=max_tags)


def to_hashtag(tag: str) -> str | None:
    """Turn a raw tag into a hashtag body (no '#'), or None if nothing valid is left.

    Lowercase, accents kept, apostrophes/spaces/dashes -> "_", other symbols and emoji
    dropped. Telegram only links hashtags with a letter in them, so "2024" gives None.
    """
    body: list[str] = []
    for ch in unicodedata.normalize("NFC", tag).lower():
        category = unicodedata.category(ch)
        if ch == "_" or ch in _APOSTROPHES or category.startswith(_SEPARATOR_CATEGORIES):
            body.append("_")
        elif category[0] in "LM" or category == "Nd":
            body.append(ch)
        # Anything else (punctuation, emoji, symbols) is dropped.
    hashtag = re.sub(r"_+", "_", "".join(body)).strip("_")
    if len(hashtag) > MAX_HASHTAG_CHARS:
        cut = hashtag[:MAX_HASHTAG_CHARS]
        # Prefer cutting between words.
        hashtag = cut.rsplit("_", 1)[0] if "_" in cut else cut
    if not any(ch.isalpha() for ch in hashtag):
        return None
    return hashtag


def format_hashtags(tags: Iterable[str], *, max_tags: int) -> list[str]:
    """'#tag' strings: normalised, deduplicated (order kept), at most `max_tags`."""
    hashtags: list[str] = []
    for tag in tags:
        if len(hashtags) >= max_tags:
            break
        body = to_hashtag(tag)
        if body is not None and f"#{body}" not in hashtags:
            hashtags.append(f"#{body}")
    return hashtags


def hashtag_line(hashtags: list[str]) -> str:
    return " ".join(hashtags)
