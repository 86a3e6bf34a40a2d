"""A tiny random Whisper with 128 mel bins (the large-v3 / large-v3-turbo input), built
from a ``WhisperConfig`` and the packaged whisper-base tokenizer: what CI can push through
training, the gate, the CTranslate2 export and serving in seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from model.asr.folders import PREPROCESSOR_FILE, whisper_preprocessor_config

LARGE_V3_MEL_BINS = 128
# Small enough for seconds on a CPU, shaped like Whisper otherwise.
_DIMS = {
    "d_model": 64,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 128,
    "decoder_ffn_dim": 128,
}
# (scale of the last layer norm's weight, length of its bias toward <|endoftext|>)
_EOS_LEAN = (0.2, 8.0)
_PROCESSOR_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "special_tokens_map.json",
    "normalizer.json",
    "generation_config.json",
)


def build_tiny_whisper(reference_hf: Path, out: Path, *, seed: int = 0) -> Path:
    """A random 128-mel Whisper in ``out``, with ``reference_hf``'s tokenizer and token ids.

    The output projection favours ``<|endoftext|>``, as a trained Whisper does on silence:
    a random decoder would otherwise write 448 tokens of noise per clip and beam search
    on every evaluation clip would take most of the test's time.
    """
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    reference = json.loads((Path(reference_hf) / "config.json").read_text(encoding="utf-8"))
    keep = {k: v for k, v in reference.items() if k.endswith("token_id") or "suppress" in k}
    config = WhisperConfig(
        vocab_size=reference["vocab_size"],
        num_mel_bins=LARGE_V3_MEL_BINS,
        max_source_positions=1500,
        max_target_positions=448,
        **_DIMS,
        **keep,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():  # the decoder's last layer norm leans toward <|endoftext|>
        # (<|endoftext|> is also the padding id, whose embedding starts at zero.)
        eos = torch.nn.functional.normalize(torch.randn(config.d_model), dim=0)
        model.model.decoder.embed_tokens.weight[config.eos_token_id] = eos
        norm = model.model.decoder.layer_norm
        norm.weight.mul_(_EOS_LEAN[0])
        norm.bias.copy_(_EOS_LEAN[1] * eos)
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True)
    for name in _PROCESSOR_FILES:
        source = Path(reference_hf) / name
        if source.is_file():
            shutil.copyfile(source, out / name)
    preprocessor = whisper_preprocessor_config(LARGE_V3_MEL_BINS)
    (out / PREPROCESSOR_FILE).write_text(json.dumps(preprocessor, indent=2), encoding="utf-8")
    return out


def tiny_whisper_config(*, vocab_size: int = 512) -> Any:
    """The tiny model's shape (128 mel bins, ``_DIMS``) with a small vocabulary: for tests
    of weights alone, which need no tokenizer."""
    from transformers import WhisperConfig

    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=LARGE_V3_MEL_BINS,
        max_source_positions=1500,
        max_target_positions=448,
        **_DIMS,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
        decoder_start_token_id=vocab_size - 2,
    )
