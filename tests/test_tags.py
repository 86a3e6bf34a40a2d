"""Hashtags: text2tags on a tiny locally built T5, the YAKE fallback, and formatting."""

from __future__ import annotations

import json
import logging
import time
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from model.tagging.keywords import KeywordTagger
from model.tagging.tags import (
    TEXT2TAGS_PREFIX,
    NullTagger,
    Tagger,
    TaggerUnavailable,
    Text2TagsTagger,
    format_hashtags,
    hashtag_line,
    load_tagger,
    merge_chunk_tags,
    parse_tags,
    to_hashtag,
)

# The tiny model learns these outputs, so the tests can check the whole path:
# prefix + chunking -> generate -> decode -> split -> merge -> hashtags.
PIZZA = "oggi a roma abbiamo mangiato una pizza buonissima."
PIZZA_TAGS = "roma, pizza"
FOOTBALL = "la juventus ha vinto la partita di calcio."
FOOTBALL_TAGS = "calcio, roma"  # shares "roma" with PIZZA: merged tags rank it first
TRAINING_PAIRS = [(PIZZA, PIZZA_TAGS), (FOOTBALL, FOOTBALL_TAGS)]
TOKENIZER_CORPUS = [
    *(TEXT2TAGS_PREFIX + text for text, _ in TRAINING_PAIRS),
    *(tags for _, tags in TRAINING_PAIRS),
    "domani pioverà su milano e torino, dice il meteo.",
    "la ricetta della carbonara vuole guanciale, uova e pecorino.",
    "il governo ha approvato la legge di bilancio.",
]
TRAINING_STEPS = 120
MISSING_MODEL = "does-not-exist/nope"

TRANSCRIPTS = {
    "weather": (
        "Buongiorno a tutti. Oggi a Roma il tempo è piuttosto instabile: le previsioni meteo "
        "indicano pioggia nel pomeriggio e temporali in serata. La protezione civile ha "
        "diramato un'allerta meteo gialla per tutto il Lazio. Domani il tempo dovrebbe "
        "migliorare, con il ritorno del sole su Roma e temperature in aumento."
    ),
    "football": (
        "Grande vittoria della Juventus contro l'Inter nel derby d'Italia. La partita è "
        "finita due a uno: Vlahović ha segnato il primo gol al ventesimo minuto, poi l'Inter "
        "ha pareggiato su rigore. Nel secondo tempo la Juventus ha trovato il gol della "
        "vittoria con un colpo di testa. L'allenatore della Juventus si è detto soddisfatto."
    ),
    "recipe": (
        "Oggi prepariamo la carbonara, la ricetta romana più famosa. Servono spaghetti, "
        "guanciale, uova, pecorino romano e pepe nero. Tagliate il guanciale a listarelle e "
        "fatelo rosolare in padella. Intanto sbattete i tuorli con il pecorino. Scolate gli "
        "spaghetti al dente e mescolate tutto fuori dal fuoco, così la carbonara resta cremosa."
    ),
    # Unpunctuated, lowercase, as speech often comes out.
    "school": (
        "allora ragazzi domani c'è la verifica di matematica quindi mi raccomando ripassate "
        "le equazioni di secondo grado e i sistemi lineari la verifica dura due ore e potete "
        "usare la calcolatrice ma non il telefono"
    ),
    "ai": (
        "L'intelligenza artificiale sta cambiando il mondo del lavoro. Secondo un nuovo "
        "rapporto, entro il 2030 l'intelligenza artificiale potrebbe automatizzare molte "
        "attività ripetitive negli uffici. I sindacati chiedono regole chiare e investimenti "
        "nella formazione dei lavoratori. Il governo ha annunciato un piano da due miliardi "
        "per la formazione digitale."
    ),
}
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


# ---------------------------------------------------------------- tiny text2tags model


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread() -> Iterator[None]:
    # Tiny matrices gain nothing from threads, and on a busy 2-core machine OpenMP's
    # spinning threads make the tiny model's training many times slower.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_text2tags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A T5 with a tokenizer trained here, taught to tag PIZZA and FOOTBALL; no downloads."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    unigram.train_from_iterator(
        TOKENIZER_CORPUS,
        trainers.UnigramTrainer(
            vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
        ),
    )
    vocab = [(piece, score) for piece, score in json.loads(unigram.to_str())["model"]["vocab"]]
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0)

    config = T5Config(
        vocab_size=len(vocab),
        d_model=32,
        d_ff=64,
        d_kv=8,
        num_heads=4,
        num_layers=2,
        num_decoder_layers=2,
        dropout_rate=0.0,  # memorise quickly and deterministically
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(config)
    batch = tokenizer(
        [TEXT2TAGS_PREFIX + text for text, _ in TRAINING_PAIRS], padding=True, return_tensors="pt"
    )
    labels = tokenizer([tags for _, tags in TRAINING_PAIRS], padding=True, return_tensors="pt")
    label_ids = labels.input_ids.masked_fill(labels.attention_mask == 0, -100)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(TRAINING_STEPS):
        loss = model(**batch, labels=label_ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05, f"tiny model did not learn its tags (loss {loss.item():.3f})"

    out = tmp_path_factory.mktemp("tiny-text2tags")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def sentence_tokens(model_dir: Path, sentence: str) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return len(tokenizer(sentence, add_special_tokens=False)["input_ids"])


def test_text2tags_loads_lazily_generates_and_parses(tiny_text2tags: Path) -> None:
    tagger = Text2TagsTagger(str(tiny_text2tags), local_files_only=True)
    assert tagger.name == f"text2tags:{tiny_text2tags}"
    assert not tagger.loaded

    assert tagger.tags(PIZZA) == ["roma", "pizza"]
    assert tagger.loaded
    assert tagger.tags(FOOTBALL) == ["calcio", "roma"]
    assert format_hashtags(tagger.tags(PIZZA), max_tags=5) == ["#roma", "#pizza"]
    assert tagger.tags("   ") == []


def test_text2tags_chunks_long_text_and_merges_by_frequency(tiny_text2tags: Path) -> None:
    prefix = sentence_tokens(tiny_text2tags, TEXT2TAGS_PREFIX)
    longest = max(sentence_tokens(tiny_text2tags, s) for s in (PIZZA, FOOTBALL))
    # Room for one sentence per chunk, not two.
    tagger = Text2TagsTagger(
        str(tiny_text2tags), local_files_only=True, max_input_tokens=prefix + 1 + longest
    )

    assert tagger.tags(f"{PIZZA} {FOOTBALL}") == ["roma", "pizza", "calcio"]
    # Far more chunks than are tagged: still the same answer, and quickly.
    started = time.perf_counter()
    assert tagger.tags(" ".join([PIZZA] * 60)) == ["roma", "pizza"]
    assert time.perf_counter() - started < 5
    # One endless unpunctuated "sentence" is cut by tokens instead.
    endless = " ".join([PIZZA.rstrip(".")] * 30)
    assert all(isinstance(tag, str) and tag for tag in tagger.tags(endless))


def test_text2tags_loads_once_across_threads(tiny_text2tags: Path) -> None:
    tagger = Text2TagsTagger(str(tiny_text2tags), local_files_only=True)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(tagger.tags, [PIZZA] * 4))
    assert results == [["roma", "pizza"]] * 4


def test_load_tagger_text2tags_uses_the_local_model(tiny_text2tags: Path) -> None:
    tagger = load_tagger("text2tags", model=str(tiny_text2tags), max_tags=3, local_files_only=True)
    assert isinstance(tagger, Text2TagsTagger)
    assert tagger.loaded  # eager: a missing model shows at start-up
    assert tagger.tags(PIZZA) == ["roma", "pizza"]


# ---------------------------------------------------------------- choosing a tagger


def test_auto_falls_back_to_keywords_quickly(caplog: pytest.LogCaptureFixture) -> None:
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="model.tagging.tags"):
        tagger = load_tagger("auto", model=MISSING_MODEL, max_tags=4, local_files_only=True)
    assert time.perf_counter() - started < 5
    assert isinstance(tagger, KeywordTagger)
    assert tagger.name == "keywords"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and MISSING_MODEL in warnings[0].getMessage()
    assert "roma" in tagger.tags(TRANSCRIPTS["weather"])


def test_auto_without_cache_does_not_wait_on_hub_retries() -> None:
    # Not local-only: the model is not cached, so the Hub is asked once, briefly (offline
    # here; online it answers "not found"). huggingface_hub alone would retry for ~45 s.
    started = time.perf_counter()
    tagger = load_tagger("auto", model=MISSING_MODEL, max_tags=4)
    assert time.perf_counter() - started < 15
    assert isinstance(tagger, KeywordTagger)


def test_text2tags_choice_raises_when_model_is_missing(tmp_path: Path) -> None:
    with pytest.raises(TaggerUnavailable, match="nope"):
        load_tagger("text2tags", model=MISSING_MODEL, max_tags=4, local_files_only=True)
    with pytest.raises(TaggerUnavailable):
        Text2TagsTagger(str(tmp_path), local_files_only=True).load()  # empty folder


def test_off_and_keywords_choices() -> None:
    off = load_tagger("off", model=MISSING_MODEL, max_tags=4)
    assert isinstance(off, NullTagger) and off.name == "off"
    assert off.tags(TRANSCRIPTS["weather"]) == []
    keywords = load_tagger("keywords", model=MISSING_MODEL, max_tags=2)
    assert isinstance(keywords, KeywordTagger)
    assert len(keywords.tags(TRANSCRIPTS["weather"])) == 2
    assert all(isinstance(t, Tagger) for t in (off, keywords))


# ---------------------------------------------------------------- keyword tagger


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


# ---------------------------------------------------------------- parsing and formatting


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
