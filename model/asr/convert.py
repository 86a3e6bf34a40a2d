"""Move Whisper models between CTranslate2 and Hugging Face transformers formats.

* import a CTranslate2 Whisper model into a trainable ``WhisperForConditionalGeneration``
  checkpoint: the exact inverse of CTranslate2's own Whisper converter (NOTES §1);
* export a fine-tuned transformers checkpoint back to CTranslate2 for serving.

The packaged whisper-base is assembled by ``model.asr.packaged``; ``model.asr.ct2_format`` reads the
CT2 binary; ``model.asr.folders`` holds what every model folder shares. Every output folder is
built in a temporary folder beside its destination and renamed into place.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from model.asr.ct2_format import is_ct2_dir, read_ct2_model
from model.asr.folders import (
    CONFIG_FILE,
    MODEL_BIN,
    PREPROCESSOR_FILE,
    TOKENIZER_FILE,
    ConversionError,
    atomic_dir,
    check_destination,
    is_hf_dir,
    read_json,
    whisper_preprocessor_config,
)

# Re-exported: callers of the converters check folders and catch the error through here.
__all__ = [
    "QUANTIZATIONS",
    "ConversionError",
    "export_hf_to_ct2",
    "import_ct2_to_hf",
    "is_ct2_dir",
    "is_hf_dir",
]

QUANTIZATIONS = frozenset(
    {"int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16",
     "float32"}
)  # fmt: skip

# Special tokens by their text: ids differ between Whisper vocabularies (large-v3 adds one
# language), so they are always looked up.
ENDOFTEXT = "<|endoftext|>"
STARTOFTRANSCRIPT = "<|startoftranscript|>"
TRANSLATE = "<|translate|>"
TRANSCRIBE = "<|transcribe|>"
STARTOFPREV = "<|startofprev|>"
NOTIMESTAMPS = "<|notimestamps|>"
MAX_INITIAL_TIMESTAMP_INDEX = 50  # openai/whisper's max_initial_timestamp of 1.0 s
_LAYER_RE = re.compile(r"^(encoder|decoder)/layer_(\d+)/")


def import_ct2_to_hf(ct2_dir: Path, out_dir: Path, *, overwrite: bool = False) -> Path:
    """Write a trainable float32 transformers Whisper checkpoint built from a CT2 model.

    ``out_dir`` receives the safetensors weights, config.json, generation_config.json (with
    the CT2 config's suppress ids, language ids and alignment heads) and the processor files
    (tokenizer with all Whisper special tokens, preprocessor_config.json). An existing
    non-empty ``out_dir`` is replaced only when ``overwrite`` is set.
    """
    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    if not is_ct2_dir(ct2_dir):
        raise ConversionError(f"{ct2_dir} is not a CTranslate2 Whisper model folder")
    if not (ct2_dir / TOKENIZER_FILE).is_file():
        raise ConversionError(f"{ct2_dir} has no {TOKENIZER_FILE}; it is needed for the tokenizer")
    check_destination(out_dir, overwrite=overwrite)

    ct2_config = read_json(ct2_dir / CONFIG_FILE)
    variables = _dequantize(read_ct2_model(ct2_dir / MODEL_BIN))
    dims = _whisper_dims(variables)
    special_tokens = _special_tokens(ct2_dir / TOKENIZER_FILE)
    token_ids = {token: token_id for token_id, token in special_tokens}
    for required in (ENDOFTEXT, STARTOFTRANSCRIPT, NOTIMESTAMPS):
        if required not in token_ids:
            raise ConversionError(f"{TOKENIZER_FILE} lacks the special token {required}")

    with atomic_dir(out_dir, replace=overwrite) as tmp:
        # The processor first: its checks are cheap and fail before the slow part.
        _save_processor(tmp, ct2_dir, dims["num_mel_bins"], [t for _, t in special_tokens])
        _save_hf_model(tmp, variables, dims, ct2_config, token_ids)
    return out_dir


def _dequantize(variables: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float32 weights; int8/int16 weights are divided by their CT2 ``weight_scale``."""
    result: dict[str, np.ndarray] = {}
    done: dict[int, np.ndarray] = {}  # aliases share one array: dequantize it once
    for name, value in variables.items():
        if name.endswith("/weight_scale"):
            continue
        if id(value) in done:
            result[name] = done[id(value)]
            continue
        if name.endswith("/weight") and value.dtype in (np.int8, np.int16):
            scale = variables.get(name + "_scale")
            if scale is None:
                raise ConversionError(f"quantized {name!r} has no weight_scale")
            scale = scale.astype(np.float32)
            # Per output channel: one scale per row of a linear or per filter of a conv.
            dequantized = value.astype(np.float32) / scale.reshape(
                scale.shape + (1,) * (value.ndim - 1)
            )
            done[id(value)] = dequantized
            value = dequantized
        result[name] = value
    return result


def _whisper_dims(v: Mapping[str, np.ndarray]) -> dict[str, int]:
    """WhisperConfig dimensions, read from the tensors themselves."""
    try:
        vocab_size, d_model = v["decoder/embeddings/weight"].shape
        layers = {"encoder": set(), "decoder": set()}
        for name in v:
            match = _LAYER_RE.match(name)
            if match:
                layers[match.group(1)].add(int(match.group(2)))
        dims = {
            "vocab_size": int(vocab_size),
            "d_model": int(d_model),
            "num_mel_bins": int(v["encoder/conv1/weight"].shape[1]),
            "encoder_layers": len(layers["encoder"]),
            "decoder_layers": len(layers["decoder"]),
            "encoder_attention_heads": int(v["encoder/num_heads"]),
            "decoder_attention_heads": int(v["decoder/num_heads"]),
            "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
            "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
            "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
            "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0]),
        }
    except KeyError as exc:
        raise ConversionError(f"model.bin lacks the Whisper variable {exc.args[0]!r}") from None
    for side in ("encoder", "decoder"):
        if layers[side] != set(range(dims[f"{side}_layers"])):
            raise ConversionError(f"model.bin has non-contiguous {side} layers")
    return dims


def _hf_state_dict(v: Mapping[str, np.ndarray], dims: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The inverse of CTranslate2's WhisperLoader, as HF parameter names -> float32 arrays."""
    projection = v.get("decoder/projection/weight")
    if projection is not None and not np.array_equal(projection, v["decoder/embeddings/weight"]):
        raise ConversionError("the output projection is not tied to the embeddings")
    if "decoder/projection/bias" in v:
        raise ConversionError("the output projection has a bias that Whisper cannot hold")
    state = _StateDict(v, d_model=dims["d_model"])
    state.encoder(dims["encoder_layers"])
    state.decoder(dims["decoder_layers"])
    return state.tensors


class _StateDict:
    """HF tensors built from CT2 variables ``v``, one module kind per method."""

    def __init__(self, v: Mapping[str, np.ndarray], *, d_model: int) -> None:
        self.v = v
        self.d_model = d_model
        self.tensors: dict[str, np.ndarray] = {}

    def put(self, hf_name: str, value: np.ndarray) -> None:
        self.tensors[hf_name] = np.array(value, dtype=np.float32, order="C")  # writable copy

    def linear(self, hf: str, ct2: str) -> None:
        self.put(f"{hf}.weight", self.v[f"{ct2}/weight"])
        self.put(f"{hf}.bias", self.v[f"{ct2}/bias"])

    def layer_norm(self, hf: str, ct2: str) -> None:
        self.put(f"{hf}.weight", self.v[f"{ct2}/gamma"])
        self.put(f"{hf}.bias", self.v[f"{ct2}/beta"])

    def split_qkv(self, hf: str, ct2: str, names: tuple[str, ...]) -> None:
        # CT2 fuses q/k/v along the output axis; HF's k_proj has no bias (CT2 stores zeros).
        weight, bias = self.v[f"{ct2}/weight"], self.v[f"{ct2}/bias"]
        for i, proj in enumerate(names):
            rows = slice(i * self.d_model, (i + 1) * self.d_model)
            self.put(f"{hf}.{proj}.weight", weight[rows])
            if proj != "k_proj":
                self.put(f"{hf}.{proj}.bias", bias[rows])
            elif np.any(bias[rows]):
                raise ConversionError(f"{hf}.k_proj has a non-zero bias that HF cannot hold")

    def self_attention(self, hf: str, ct2: str) -> None:
        self.split_qkv(hf, f"{ct2}/linear_0", ("q_proj", "k_proj", "v_proj"))
        self.linear(f"{hf}.out_proj", f"{ct2}/linear_1")

    def cross_attention(self, hf: str, ct2: str) -> None:
        self.linear(f"{hf}.q_proj", f"{ct2}/linear_0")
        self.split_qkv(hf, f"{ct2}/linear_1", ("k_proj", "v_proj"))
        self.linear(f"{hf}.out_proj", f"{ct2}/linear_2")

    def ffn(self, hf: str, ct2: str) -> None:
        self.linear(f"{hf}.fc1", f"{ct2}/linear_0")
        self.linear(f"{hf}.fc2", f"{ct2}/linear_1")
        self.layer_norm(f"{hf}.final_layer_norm", f"{ct2}/layer_norm")

    def encoder(self, layers: int) -> None:
        enc = "model.encoder"
        self.linear(f"{enc}.conv1", "encoder/conv1")
        self.linear(f"{enc}.conv2", "encoder/conv2")
        self.put(f"{enc}.embed_positions.weight", self.v["encoder/position_encodings/encodings"])
        self.layer_norm(f"{enc}.layer_norm", "encoder/layer_norm")
        for i in range(layers):
            hf, ct2 = f"{enc}.layers.{i}", f"encoder/layer_{i}"
            self.self_attention(f"{hf}.self_attn", f"{ct2}/self_attention")
            self.layer_norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
            self.ffn(hf, f"{ct2}/ffn")

    def decoder(self, layers: int) -> None:
        dec = "model.decoder"
        self.put(f"{dec}.embed_tokens.weight", self.v["decoder/embeddings/weight"])
        self.put(f"{dec}.embed_positions.weight", self.v["decoder/position_encodings/encodings"])
        self.layer_norm(f"{dec}.layer_norm", "decoder/layer_norm")
        for i in range(layers):
            hf, ct2 = f"{dec}.layers.{i}", f"decoder/layer_{i}"
            self.self_attention(f"{hf}.self_attn", f"{ct2}/self_attention")
            self.layer_norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
            self.cross_attention(f"{hf}.encoder_attn", f"{ct2}/attention")
            self.layer_norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
            self.ffn(hf, f"{ct2}/ffn")


def _save_hf_model(
    out: Path,
    variables: Mapping[str, np.ndarray],
    dims: Mapping[str, int],
    ct2_config: Mapping[str, Any],
    token_ids: Mapping[str, int],
) -> None:
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    try:
        state_dict = _hf_state_dict(variables, dims)
    except KeyError as exc:
        raise ConversionError(f"model.bin lacks the Whisper variable {exc.args[0]!r}") from None
    eot = token_ids[ENDOFTEXT]
    config = WhisperConfig(
        **dims,
        decoder_start_token_id=token_ids[STARTOFTRANSCRIPT],
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        suppress_tokens=list(ct2_config.get("suppress_ids") or []),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin") or []),
        tie_word_embeddings=True,
        dtype="float32",
    )
    model = WhisperForConditionalGeneration(config)
    tensors = {name: torch.from_numpy(array) for name, array in state_dict.items()}
    tensors["proj_out.weight"] = tensors["model.decoder.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ConversionError(
            f"weights do not fit WhisperForConditionalGeneration: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    model.tie_weights()
    model.generation_config = _generation_config(dims, ct2_config, token_ids)
    model.save_pretrained(out, safe_serialization=True)


def _generation_config(
    dims: Mapping[str, int], ct2_config: Mapping[str, Any], token_ids: Mapping[str, int]
) -> Any:
    """HF generation config carrying everything Whisper's generate() and the CT2 exporter read."""
    from transformers import GenerationConfig

    id_to_token = {token_id: token for token, token_id in token_ids.items()}
    lang_ids = [int(i) for i in ct2_config.get("lang_ids") or []]
    unknown = [i for i in lang_ids if i not in id_to_token]
    if unknown:
        raise ConversionError(f"language ids {unknown[:5]} are not special tokens")
    eot = token_ids[ENDOFTEXT]
    fields: dict[str, Any] = {
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": token_ids[STARTOFTRANSCRIPT],
        "no_timestamps_token_id": token_ids[NOTIMESTAMPS],
        "suppress_tokens": list(ct2_config.get("suppress_ids") or []),
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin") or []),
        "max_length": dims["max_target_positions"],
        "max_initial_timestamp_index": MAX_INITIAL_TIMESTAMP_INDEX,
        "return_timestamps": False,
        "is_multilingual": bool(lang_ids),
    }
    if STARTOFPREV in token_ids:
        fields["prev_sot_token_id"] = token_ids[STARTOFPREV]
    if lang_ids:
        fields["lang_to_id"] = {id_to_token[i]: i for i in lang_ids}
        fields["task_to_id"] = {
            task: token_ids[token]
            for task, token in (("transcribe", TRANSCRIBE), ("translate", TRANSLATE))
            if token in token_ids
        }
    if ct2_config.get("alignment_heads"):
        fields["alignment_heads"] = [[int(a), int(b)] for a, b in ct2_config["alignment_heads"]]
    return GenerationConfig(**fields)


def _special_tokens(tokenizer_json: Path) -> list[tuple[int, str]]:
    """Whisper's special tokens (<|endoftext|> .. <|notimestamps|>) as (id, text), by id."""
    added = read_json(tokenizer_json).get("added_tokens", [])
    special = sorted((int(t["id"]), str(t["content"])) for t in added if t.get("special"))
    if not special:
        raise ConversionError(f"{tokenizer_json} declares no special tokens")
    return special


def _save_processor(out: Path, ct2_dir: Path, num_mel_bins: int, special: list[str]) -> None:
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        # Load from a folder holding only tokenizer.json: ct2_dir's config.json is not HF's.
        shutil.copyfile(ct2_dir / TOKENIZER_FILE, Path(scratch) / TOKENIZER_FILE)
        # Without every special token listed, transformers 5 treats language/task/timestamp
        # tokens as text (NOTES §1).
        tokenizer = WhisperTokenizer.from_pretrained(scratch, extra_special_tokens=special)
    preprocessor = ct2_dir / PREPROCESSOR_FILE
    config = read_json(preprocessor) if preprocessor.is_file() else {}
    config = {**whisper_preprocessor_config(num_mel_bins), **config}
    if config["feature_size"] != num_mel_bins:
        raise ConversionError(
            f"{PREPROCESSOR_FILE} has {config['feature_size']} mel bins, the model {num_mel_bins}"
        )
    feature_extractor = WhisperFeatureExtractor.from_dict(config)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(out)
    # WhisperProcessor.save_pretrained no longer writes preprocessor_config.json (NOTES §1).
    feature_extractor.save_pretrained(out)


# --------------------------------------------------------------------------- HF -> CT2


def export_hf_to_ct2(
    hf_dir: Path, out_dir: Path, *, quantization: str = "int8", overwrite: bool = False
) -> Path:
    """Convert a transformers Whisper checkpoint to a CTranslate2 model faster-whisper loads.

    tokenizer.json and preprocessor_config.json are copied beside model.bin. An existing
    non-empty ``out_dir`` is replaced only when ``overwrite`` is set.
    """
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    if quantization not in QUANTIZATIONS:
        raise ConversionError(
            f"unknown quantization {quantization!r}; use one of {sorted(QUANTIZATIONS)}"
        )
    if not is_hf_dir(hf_dir):
        raise ConversionError(f"{hf_dir} is not a transformers Whisper checkpoint")
    for name in (TOKENIZER_FILE, PREPROCESSOR_FILE):
        if not (hf_dir / name).is_file():
            raise ConversionError(f"{hf_dir} has no {name}; save the processor with the model")
    check_destination(out_dir, overwrite=overwrite)

    from ctranslate2.converters import TransformersConverter

    converter = TransformersConverter(str(hf_dir), copy_files=[TOKENIZER_FILE, PREPROCESSOR_FILE])
    with atomic_dir(out_dir, replace=overwrite) as tmp:
        target = tmp / "model"  # the converter wants to create its output folder itself
        try:
            converter.convert(str(target), quantization=quantization)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ConversionError(f"CTranslate2 conversion of {hf_dir} failed: {exc}") from exc
        for item in target.iterdir():
            item.rename(tmp / item.name)
        target.rmdir()
    return out_dir
