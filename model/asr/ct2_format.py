"""Reading CTranslate2's Whisper ``model.bin`` (binary format version 6, NOTES §1).

The layout: u32 version; u16-length name "WhisperSpec"; u32 revision; u32 variable count;
per variable a u16-length name, u8 rank, u32 dims, u8 dtype, u32 byte count and the data;
then u32 alias count and alias pairs (``decoder/projection/weight`` ->
``decoder/embeddings/weight``). Strings carry their trailing NUL in the length.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from model.asr.folders import CONFIG_FILE, MODEL_BIN, ConversionError

CT2_BINARY_VERSION = 6
CT2_WHISPER_SPEC = "WhisperSpec"
# Enough bytes for the header: version, spec name and revision.
HEADER_BYTES = 64

# CT2 DataType enum order (include/ctranslate2/types.h); bfloat16 has no numpy type.
_CT2_DTYPES: dict[int, str] = {
    0: "float32",
    1: "int8",
    2: "int16",
    3: "int32",
    4: "float16",
    5: "bfloat16",
}


def is_ct2_dir(path: Path) -> bool:
    """True if ``path`` holds a CTranslate2 Whisper model (checked from model.bin's header)."""
    path = Path(path)
    model_bin = path / MODEL_BIN
    if not (model_bin.is_file() and (path / CONFIG_FILE).is_file()):
        return False
    try:
        with model_bin.open("rb") as f:
            return read_header(Reader(f.read(HEADER_BYTES))) is not None
    except (OSError, ConversionError):
        return False


class Reader:
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


def read_header(reader: Reader) -> tuple[str, int]:
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
    reader = Reader(data)
    read_header(reader)
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
