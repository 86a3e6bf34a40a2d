"""Whisper with an optional cached lower encoder (imported lazily: it imports torch).

``PartialEncoderWhisper`` is a ``WhisperForConditionalGeneration`` whose ``forward`` also
accepts ``lower_hidden_states``: the output of the frozen lower encoder layers, computed
once per clip. Only the top encoder layers and the decoder then run (and learn) at each
step, which is what makes CPU training practical (NOTES §3). Its weights are an ordinary
Whisper checkpoint: ``to_plain`` gives back a ``WhisperForConditionalGeneration``.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import WhisperForConditionalGeneration

DECODER_ALL = "all"
DECODER_CROSS_ATTENTION = "cross_attention"
DECODER_CHOICES = (DECODER_ALL, DECODER_CROSS_ATTENTION)


class PartialEncoderWhisper(WhisperForConditionalGeneration):
    # Set by ``configure_trainable``: layers below this index run once, outside training.
    cached_layers: int = 0

    def forward(  # type: ignore[override]
        self,
        input_features: torch.Tensor | None = None,
        lower_hidden_states: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> Any:
        if lower_hidden_states is None:
            return super().forward(input_features=input_features, labels=labels)
        encoder = self.model.encoder
        hidden = lower_hidden_states
        for layer in encoder.layers[self.cached_layers :]:
            hidden = layer(hidden, None)
        hidden = encoder.layer_norm(hidden)
        return super().forward(encoder_outputs=(hidden,), labels=labels)

    @torch.no_grad()
    def lower_encoder(self, input_features: torch.Tensor) -> torch.Tensor:
        """The input of encoder layer ``cached_layers`` (what ``forward`` takes as cache)."""
        encoder = self.model.encoder
        hidden = torch.nn.functional.gelu(encoder.conv1(input_features))
        hidden = torch.nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
        hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]]
        for layer in encoder.layers[: self.cached_layers]:
            hidden = layer(hidden, None)
        return hidden

    def configure_trainable(
        self,
        *,
        encoder_layers: int,
        train_embeddings: bool,
        decoder: str = DECODER_ALL,
        front_end: bool = False,
    ) -> int:
        """Train the top ``encoder_layers`` encoder layers and the decoder; freeze the rest.

        ``decoder``: ``all`` trains every decoder weight; ``cross_attention`` only the
        decoder's attention over the audio (and its layer norm), so the decoder's language
        model, which a few hundred sentences would overwrite, stays the start model's.
        Returns the number of trainable parameters. Token and position embeddings stay
        frozen unless asked: with a few hundred sentences they only memorise vocabulary.
        ``front_end``: also train the convolutions before the first encoder layer (only
        where they run at every step: ``lower_encoder`` always computes them, so a run over
        the cache cannot change them, even with every encoder layer trained).
        """
        if decoder not in DECODER_CHOICES:
            raise ValueError(f"decoder must be one of {DECODER_CHOICES}, not {decoder!r}")
        total = len(self.model.encoder.layers)
        encoder_layers = max(0, min(encoder_layers, total))
        self.cached_layers = total - encoder_layers
        for parameter in self.parameters():
            parameter.requires_grad = False
        trainable: list[torch.nn.Module] = [*self.model.encoder.layers[self.cached_layers :]]
        if decoder == DECODER_ALL:
            trainable.append(self.model.decoder)
        else:
            for layer in self.model.decoder.layers:
                trainable += [layer.encoder_attn, layer.encoder_attn_layer_norm]
        if encoder_layers:
            trainable.append(self.model.encoder.layer_norm)
        if front_end:
            trainable += [self.model.encoder.conv1, self.model.encoder.conv2]
        for module in trainable:
            for parameter in module.parameters():
                parameter.requires_grad = True
        if not train_embeddings:
            self.model.decoder.embed_tokens.weight.requires_grad = False
            self.model.decoder.embed_positions.weight.requires_grad = False
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def to_plain(self) -> WhisperForConditionalGeneration:
        """The same weights as a plain Whisper model (what converters and loaders expect)."""
        plain = WhisperForConditionalGeneration(self.config)
        plain.load_state_dict(self.state_dict())
        plain.tie_weights()
        plain.generation_config = self.generation_config
        plain.config.architectures = ["WhisperForConditionalGeneration"]
        return plain
