"""Hashtags without a model: the YAKE keyword tagger, tag parsing and merging, and the
formatting of Telegram hashtags."""

from __future__ import annotations

import unicodedata

import pytest

from model.tagging.keywords import KeywordTagger
from model.tagging.tags import (
    NullTagger,
    Tagger,
    format_hashtags,
    hashtag_line,
    load_tagger,
    merge_chunk_tags,
    parse_tags,
    to_hashtag,
)
from tests.support.transcripts import TRANSCRIPTS

EXPECTED_KEYWORDS = {
    "weather": {"roma", "meteo"},
    "football": {"juventus", "inter"},
    "recipe": {"carbonara", "guanciale"},
    "school": {"verifica", "matematica"},
    "ai": {"intelligenza artificiale", "formazione"},
}
NOISE_WORDS = {
    "il", "la", "di", "che", "è", "un", "una", "oggi", "domani", "buongiorno", "allora",
    "quindi", "ragazzi", "raccomando", "entro", "piuttosto", "prepariamo",
}  # fmt: skip
MISSING_MODEL = "does-not-exist/nope"


def test_off_and_keywords_choices() -> None:
    off = load_tagger("off", model=MISSING_MODEL, max_tags=4)
    assert isinstance(off, NullTagger) and off.name == "off"
    assert off.tags(TRANSCRIPTS["weather"]) == []
    keywords = load_tagger("keywords", model=MISSING_MODEL, max_tags=2)
    assert isinstance(keywords, KeywordTagger)
    assert len(keywords.tags(TRANSCRIPTS["weather"])) == 2
    assert all(isinstance(t, Tagger) for t in (off, keywords))


@pytest.fixture(scope="module")
def keyword_tagger() -> KeywordTagger:
    return KeywordTagger(max_tags=5)


@pytest.mark.parametrize("topic", sorted(TRANSCRIPTS))
def test_keywords_on_italian_transcripts(keyword_tagger: KeywordTagger, topic: str) -> None:
    tags = keyword_tagger.tags(TRANSCRIPTS[topic])
    assert 0 < len(tags) <= 5
    assert EXPECTED_KEYWORDS[topic] <= set(tags), tags
    words = {word for tag in tags for word in tag.split()}
    assert not words & NOISE_WORDS, tags
    assert all(tag == tag.lower() for tag in tags)
    assert len(set(tags)) == len(tags)


def test_keywords_strip_elided_articles(keyword_tagger: KeywordTagger) -> None:
    tags = keyword_tagger.tags(TRANSCRIPTS["football"])
    assert not any("'" in tag for tag in tags), tags


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", []), ("   ", []), ("ciao", []), ("...!?", []), ("2024", []), ("Roma", ["roma"])],
)
def test_keywords_on_tiny_texts(keyword_tagger: KeywordTagger, text: str, expected: list) -> None:
    assert keyword_tagger.tags(text) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("roma, pizza", ["roma", "pizza"]),
        ("roma,pizza , ,Roma", ["roma", "pizza"]),
        ("intelligenza artificiale, lavoro.", ["intelligenza artificiale", "lavoro"]),
        ("", []),
    ],
)
def test_parse_tags(output: str, expected: list[str]) -> None:
    assert parse_tags(output) == expected


def test_merge_chunk_tags() -> None:
    assert merge_chunk_tags([["roma", "pizza"], ["calcio", "Roma"], ["calcio"], ["calcio"]]) == [
        "calcio",
        "roma",
        "pizza",
    ]
    assert merge_chunk_tags([["a", "b"], ["b", "a"]]) == ["a", "b"]
    assert merge_chunk_tags([]) == []


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("Roma", "roma"),
        ("Intelligenza artificiale", "intelligenza_artificiale"),
        ("l'aquila", "l_aquila"),
        ("L’Aquila", "l_aquila"),
        ("perché", "perché"),
        ("CITTÀ", "città"),
        (unicodedata.normalize("NFD", "città"), "città"),
        ("covid-19", "covid_19"),
        ("covid19", "covid19"),
        ("2024 elezioni", "2024_elezioni"),
        ("2024", None),
        ("3,14", None),
        ("", None),
        ("   ", None),
        ("🍕", None),
        ("pizza 🍕", "pizza"),
        ("🇮🇹 italia", "italia"),
        ("#roma", "roma"),
        ("rock & roll", "rock_roll"),
        ("  __ciao__  ", "ciao"),
        ("serie A", "serie_a"),
        ("nuova   york", "nuova_york"),
        ("Emilia–Romagna", "emilia_romagna"),
        ("x", "x"),
    ],
)
def test_to_hashtag(tag: str, expected: str | None) -> None:
    assert to_hashtag(tag) == expected


def test_to_hashtag_caps_length_between_words() -> None:
    long_tag = " ".join(["parola"] * 20)
    hashtag = to_hashtag(long_tag)
    assert hashtag is not None and len(hashtag) <= 50
    assert not hashtag.endswith("_") and hashtag.endswith("parola")
    assert len(to_hashtag("a" * 80) or "") == 50


def test_format_hashtags_dedups_keeps_order_and_caps() -> None:
    tags = ["Roma", "roma", "ROMA ", "perché", "perche", "2024", "", "🍕", "Milano"]
    assert format_hashtags(tags, max_tags=10) == ["#roma", "#perché", "#perche", "#milano"]
    assert format_hashtags(tags, max_tags=2) == ["#roma", "#perché"]
    assert format_hashtags(tags, max_tags=0) == []
    assert format_hashtags(iter(["l'Aquila", "L’aquila"]), max_tags=5) == ["#l_aquila"]


def test_hashtag_line() -> None:
    assert hashtag_line(["#roma", "#pizza"]) == "#roma #pizza"
    assert hashtag_line([]) == ""
