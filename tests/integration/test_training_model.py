"""The CPU-mode model: which weights learn, and the cached lower encoder it trains over."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from training._whisper_model import (  # noqa: E402
    DECODER_ALL,
    DECODER_CROSS_ATTENTION,
    PartialEncoderWhisper,
)


@pytest.fixture(scope="module")
def model(model_cache: Path) -> PartialEncoderWhisper:
    from model.asr.sources import hf_dir

    path = hf_dir("packaged:whisper-base", cache_dir=model_cache).path
    return PartialEncoderWhisper.from_pretrained(str(path), dtype=torch.float32)


def _trainable(model: PartialEncoderWhisper) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_top_encoder_layers_and_whole_decoder(model: PartialEncoderWhisper) -> None:
    count = model.configure_trainable(encoder_layers=2, train_embeddings=False, decoder=DECODER_ALL)
    names = _trainable(model)
    assert model.cached_layers == 4
    assert count == sum(p.numel() for n, p in model.named_parameters() if n in names)
    assert any(n.startswith("model.encoder.layers.5.") for n in names)
    assert not any(n.startswith("model.encoder.layers.3.") for n in names)
    assert "model.decoder.layers.0.fc1.weight" in names
    assert "model.decoder.layers.0.self_attn.q_proj.weight" in names
    assert "model.decoder.embed_tokens.weight" not in names


def test_every_encoder_layer_over_the_cache_leaves_the_front_end(
    model: PartialEncoderWhisper,
) -> None:
    # cpu mode caches the convolutions' output: "trainable" there would be a count, not
    # a weight that learns
    count = model.configure_trainable(encoder_layers=6, train_embeddings=False)
    names = _trainable(model)
    assert model.cached_layers == 0
    assert "model.encoder.layers.0.fc1.weight" in names
    assert not any(n.startswith("model.encoder.conv") for n in names)
    assert count == sum(p.numel() for n, p in model.named_parameters() if n in names)
    model.configure_trainable(encoder_layers=6, train_embeddings=True, front_end=True)
    assert "model.encoder.conv1.weight" in _trainable(model)


def test_cross_attention_keeps_the_decoders_language_model(model: PartialEncoderWhisper) -> None:
    model.configure_trainable(
        encoder_layers=2, train_embeddings=False, decoder=DECODER_CROSS_ATTENTION
    )
    decoder = {n for n in _trainable(model) if n.startswith("model.decoder.")}
    assert decoder  # it still learns to listen to the adapted encoder ...
    assert all(".encoder_attn" in n for n in decoder)  # ... and nothing else
    assert "model.decoder.layers.5.encoder_attn.k_proj.weight" in decoder
    assert "model.decoder.layers.5.encoder_attn_layer_norm.weight" in decoder
    with pytest.raises(ValueError):
        model.configure_trainable(encoder_layers=2, train_embeddings=False, decoder="lm_head")


def test_cached_lower_encoder_gives_the_full_models_loss(model: PartialEncoderWhisper) -> None:
    model.configure_trainable(encoder_layers=2, train_embeddings=False)
    model.eval()
    features = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[50259, 50359, 50363, 1456, 50257]])
    with torch.no_grad():
        full = model(input_features=features, labels=labels).loss
        cached = model(lower_hidden_states=model.lower_encoder(features), labels=labels).loss
    assert torch.allclose(full, cached, atol=1e-4)


def test_encoder_cache_holds_clean_and_perturbed_copies(
    model: PartialEncoderWhisper, model_cache: Path, speech_dir: Path, tmp_path: Path
) -> None:
    import numpy as np

    from model.asr.sources import hf_dir
    from tests.support.speech import synthesize
    from training._datasets import cached_dataset
    from training.data import Example, LabelEncoder
    from training.encoder_cache import clip_id

    model_dir = hf_dir("packaged:whisper-base", cache_dir=model_cache).path
    clip = synthesize("Il treno parte alle otto.", speech_dir / "cache-clip.wav")
    examples = [Example(key="a", text="Il treno parte alle otto.", audio_path=clip)]
    labels = LabelEncoder(model_dir, language="it")
    model.configure_trainable(encoder_layers=2, train_embeddings=False)

    from training.encoder_cache import EncoderCache, model_key

    cache = EncoderCache(tmp_path / "cache", model_key(model_dir, model.cached_layers))

    def build(copies: int) -> object:
        dataset, _ = cached_dataset(
            model, examples, labels, cache=cache, augment_copies=copies, seed=0
        )
        return dataset

    dataset = build(2)
    assert len(dataset) == 3  # the clip as recorded + 2 perturbed copies, same labels
    rows = [np.array(dataset[i]["lower_hidden_states"], dtype=np.float32) for i in range(3)]
    assert dataset[0]["labels"] == dataset[2]["labels"]
    assert not np.allclose(rows[0], rows[1]) and not np.allclose(rows[1], rows[2])
    # a resumed run reuses the cache; fewer copies reuse a part of it
    entry = cache.path(clip_id(clip), "clean")
    stamp = entry.stat().st_mtime_ns
    assert len(build(2)) == 3 and entry.stat().st_mtime_ns == stamp
    assert len(build(0)) == 1


def test_small_data_gets_fewer_steps() -> None:
    from training.arguments import FinetuneArguments
    from training.finetune import planned_steps

    args = FinetuneArguments(max_steps=40, batch_size=8, max_epochs=3.0)
    assert planned_steps(args, 111) == 40  # a cap, when one is set, still caps
    assert planned_steps(args, 45) == 17  # 45 clips seen at most 3 times each
    assert planned_steps(args, 1) == 1
    accumulated = FinetuneArguments(max_steps=40, batch_size=8, gradient_accumulation_steps=2)
    assert planned_steps(accumulated, 45) == 9
    assert planned_steps(FinetuneArguments(max_steps=40, max_epochs=0), 45) == 40


@pytest.mark.parametrize(("schedule", "last_rate"), [("constant", 1e-4), ("linear", 2e-5)])
def test_learning_rate_after_warm_up_follows_the_schedule(
    tmp_path: Path, schedule: str, last_rate: float
) -> None:
    from transformers.optimization import get_scheduler

    from training.arguments import FinetuneArguments
    from training.finetune import _training_arguments

    args = FinetuneArguments(learning_rate=1e-4, warmup_ratio=0.5, lr_schedule=schedule)  # type: ignore[arg-type]
    training = _training_arguments(args, "cpu", tmp_path, 10, validate=False)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate)
    scheduler = get_scheduler(
        training.lr_scheduler_type, optimizer, num_warmup_steps=training.warmup_steps,
        num_training_steps=10,
    )  # fmt: skip
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[5] == pytest.approx(1e-4)  # warm-up ends at the peak either way
    assert rates[-1] == pytest.approx(last_rate)  # then constant, or down towards 0
