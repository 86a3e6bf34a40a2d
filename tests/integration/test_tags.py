"""Hashtags: text2tags on a tiny locally built T5, the YAKE fallback, and formatting."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from model.tagging.keywords import KeywordTagger
from model.tagging.tags import (
    TEXT2TAGS_PREFIX,
    TaggerUnavailable,
    Text2TagsTagger,
    format_hashtags,
    load_tagger,
)
from tests.support.transcripts import TRANSCRIPTS

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


# ---------------------------------------------------------------- keyword tagger


# ---------------------------------------------------------------- parsing and formatting
