"""The DSLM network (SongCreator §3.2): lyrics encoder, two decoders of DSLM blocks in lockstep, song decoder.

A DSLM block is self-attention over its own stream → cross-attention to the lyrics → bidirectional
cross-attention (BCA) to the other decoder at the same layer → feed-forward, each pre-norm with a residual.
The two decoders advance layer by layer together; BCA at layer l reads the other side's layer-l input. Which
positions see which is decided by the task's masks (``masks.TASKS``). The song decoder is a non-autoregressive
Transformer over the sum of the two decoders' final states and predicts song tokens at every step.
Positions are sinusoidal (no length limit in the weights).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from songcorpus.models.dslm.config import DslmConfig
from songcorpus.models.dslm.masks import StreamMasks, TaskMasks, batch_masks


def sinusoids(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """``(length, dim)`` sinusoidal positions (Vaswani et al. 2017)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2], table[:, 1::2] = torch.sin(position * frequency), torch.cos(position * frequency)
    return table


class Attention(nn.Module):
    """Multi-head attention with a boolean may-attend mask. A query that may see no key gets a zero output, so a
    stream cut off from the other one (BCA ``None``) is exactly unaffected by it."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.query, self.key_value, self.out = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)

    def keys_values(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values ``(B, H, Lk, dh)`` of ``memory`` (B, Lk, D)."""
        k, v = self.key_value(memory).view(memory.shape[0], memory.shape[1], 2, self.heads, -1).permute(2, 0, 3, 1, 4)
        return k, v

    def attend(self, x: Tensor, keys: Tensor, values: Tensor, allowed: Tensor) -> Tensor:
        """Queries from ``x`` (B, Lq, D) against ``keys``/``values``, where ``allowed`` (B or 1, Lq, Lk) is True."""
        batch, length, dim = x.shape
        q = self.query(x).view(batch, length, self.heads, -1).transpose(1, 2)
        allowed = allowed[:, None]  # one mask for every head
        seen = allowed.any(dim=-1, keepdim=True)
        # a query that may see nothing attends to everything here and its output is zeroed below
        out = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed | ~seen,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out((out * seen).transpose(1, 2).reshape(batch, length, dim))

    def forward(self, x: Tensor, memory: Tensor, allowed: Tensor) -> Tensor:
        """``x`` (B, Lq, D) attends to ``memory`` (B, Lk, D) where ``allowed`` (B or 1, Lq, Lk) is True."""
        return self.attend(x, *self.keys_values(memory), allowed)


class DslmBlock(nn.Module):
    def __init__(self, config: DslmConfig) -> None:
        super().__init__()
        d, h, p = config.d_model, config.heads, config.dropout
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(5))  # SA, CA, BCA (self, other), FFN
        self.self_attention, self.lyrics_attention, self.bca = (Attention(d, h, p) for _ in range(3))
        self.ffn = nn.Sequential(nn.Linear(d, config.ffn), nn.GELU(), nn.Dropout(p), nn.Linear(config.ffn, d))
        self.drop = nn.Dropout(p)

    def forward(self, h: Tensor, other: Tensor, lyrics: Tensor, sa: Tensor, to_lyrics: Tensor, bca: Tensor) -> Tensor:
        n = self.norms
        h = h + self.drop(self.self_attention(n[0](h), n[0](h), sa))
        h = h + self.drop(self.lyrics_attention(n[1](h), lyrics, to_lyrics))
        h = h + self.drop(self.bca(n[2](h), n[3](other), bca))
        return h + self.drop(self.ffn(n[4](h)))


@dataclass(frozen=True)
class DslmOutput:
    vocals: Tensor  # (B, T, vocab) logits of the next vocals token at each step
    accompaniment: Tensor
    song: Tensor  # (B, T, vocab) logits of the song token at each step


class Dslm(nn.Module):
    def __init__(self, config: DslmConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.lyrics_embedding = nn.Embedding(config.lyrics_vocab, d)
        layer = nn.TransformerEncoderLayer(d, config.heads, config.ffn, config.dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.lyrics_encoder = nn.TransformerEncoder(layer, config.lyrics_layers, enable_nested_tensor=False)
        self.vocals_embedding, self.accompaniment_embedding = (nn.Embedding(config.vocab, d) for _ in range(2))
        self.vocals_decoder = nn.ModuleList(DslmBlock(config) for _ in range(config.decoder_layers))
        self.accompaniment_decoder = nn.ModuleList(DslmBlock(config) for _ in range(config.decoder_layers))
        self.song_decoder = nn.TransformerEncoder(layer, config.song_layers, enable_nested_tensor=False)
        self.final_norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(3))
        self.heads = nn.ModuleList(nn.Linear(d, config.vocab) for _ in range(3))  # vocals, accompaniment, song

    def encode_lyrics(self, lyrics: Tensor, lyrics_padding: Tensor) -> Tensor:
        """``(B, L, D)`` states of the lyric tokens (``lyrics_padding`` True at padding)."""
        x = self.lyrics_embedding(lyrics) + sinusoids(lyrics.shape[1], self.config.d_model, lyrics.device)
        return self.lyrics_encoder(x, src_key_padding_mask=lyrics_padding)

    def decode(self, v: Tensor, a: Tensor, text: Tensor, to_lyrics: Tensor, m: StreamMasks,
               layer_inputs: list[tuple[Tensor, Tensor]] | None = None) -> tuple[Tensor, Tensor]:
        """The two decoders in lockstep from embedded inputs ``v``, ``a``; ``layer_inputs``, when given, collects
        each layer's (vocals, accompaniment) input."""
        for vocal_block, accompaniment_block in zip(self.vocals_decoder, self.accompaniment_decoder, strict=True):
            if layer_inputs is not None:
                layer_inputs.append((v, a))
            v, a = (vocal_block(v, a, text, m.vocals, to_lyrics, m.vocals_see_accompaniment),
                    accompaniment_block(a, v, text, m.accompaniment, to_lyrics, m.accompaniment_sees_vocals))
        return v, a

    def embed(self, vocals: Tensor, accompaniment: Tensor, start: int = 0) -> tuple[Tensor, Tensor]:
        """Token embeddings plus positions, for inputs ``(B, T)`` on one time axis that begin at step ``start``."""
        positions = sinusoids(start + vocals.shape[1], self.config.d_model, vocals.device)[start:]
        return self.vocals_embedding(vocals) + positions, self.accompaniment_embedding(accompaniment) + positions

    def forward(self, lyrics: Tensor, lyrics_padding: Tensor, vocals: Tensor, accompaniment: Tensor,
                masks: TaskMasks | Sequence[TaskMasks], padding: Tensor | None = None) -> DslmOutput:
        """Logits for inputs ``vocals`` and ``accompaniment`` ``(B, T)`` (one time axis) under a task's masks (one
        for the batch, or one per example); ``padding`` ``(B, T)`` is True at steps past an example's end."""
        steps, device = vocals.shape[1], vocals.device
        positions = sinusoids(steps, self.config.d_model, device)
        v, a = self.embed(vocals, accompaniment)
        text = self.encode_lyrics(lyrics, lyrics_padding)
        to_lyrics = (~lyrics_padding)[:, None, :].expand(-1, steps, -1)
        v, a = self.decode(v, a, text, to_lyrics, batch_masks(masks, steps, padding, device))
        v, a = self.final_norms[0](v), self.final_norms[1](a)
        song = self.final_norms[2](self.song_decoder(v + a + positions, src_key_padding_mask=padding))
        return DslmOutput(self.heads[0](v), self.heads[1](a), self.heads[2](song))


def dslm_loss(output: DslmOutput, targets: dict[str, Tensor], counts: dict[str, int] | None = None) -> Tensor:
    """CE(vocals) + CE(accompaniment) + CE(song) (SongCreator). ``targets`` holds each stream's token ids, -100
    where nothing is predicted; a stream with nothing to predict (a task's ``none`` stream) adds nothing. Each
    stream's summed CE is divided by ``counts[stream]`` (default: its predicted tokens here); a trainer passes the
    whole batch's counts so that the parts of a batch add up to the batch's loss."""
    total = output.song.new_zeros(())
    for name in ("vocals", "accompaniment", "song"):
        target = targets[name]
        count = int((target != -100).sum()) if counts is None else counts[name]
        if count:
            logits = getattr(output, name).float()
            total = total + F.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="sum") / count
    return total


def parameter_count(config: DslmConfig) -> int:
    """Parameters of ``Dslm(config)``, counted on the meta device."""
    with torch.device("meta"):
        model = Dslm(config)
    return sum(p.numel() for p in model.parameters())
