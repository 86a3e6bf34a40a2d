"""What a decode may cost: the audio limits every caller passes and the sandbox's limits."""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 2**30


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    """``enabled=False`` decodes in the calling process (trusted input, benchmarks)."""

    enabled: bool = True
    memory_bytes: int = GIB
    cpu_per_audio_second: float = 2.0
    extra_seconds: float = 10.0
    pool_size: int = 1


@dataclass(frozen=True, kw_only=True)
class AudioLimits:
    max_seconds: float = 1800.0
    min_seconds: float = 0.3
    max_bytes: int = 20 * 1024 * 1024
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)
