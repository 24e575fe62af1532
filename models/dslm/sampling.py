"""Sampling from the DSLM: top-k / temperature, the two decoders stepping in lockstep, with or without a KV cache.

Each generated stream starts from its prompt (if any) and ``<bos>``; a given stream (accompaniment-to-song and the
like) is fed whole. At every step the decoders of the generated streams add one token, sampled from their last
position's logits (vocals first, then accompaniment, from one generator). When every step is done, the song
decoder (non-autoregressive) reads both streams' final states and the song tokens are sampled from it the same way.

With the cache, a step runs each layer on the new position only: self-attention and BCA reuse the keys and values
of the earlier positions (which no later position can change: the masks of generated streams are causal), so the
tokens are exactly those of the slow path that reruns the whole model at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor

from songcorpus.models.dslm.masks import TASKS, bidirectional_cross_attention_masks, self_attention_mask
from songcorpus.models.dslm.model import Attention, Dslm, DslmBlock, sinusoids


@dataclass(frozen=True)
class Sampling:
    top_k: int = 50
    temperature: float = 0.9


def sample_logits(logits: Tensor, sampling: Sampling, generator: torch.Generator | None) -> Tensor:
    """One token per row of ``logits`` (B, V): the top ``k`` kept, softened by the temperature."""
    values, indices = logits.float().topk(min(sampling.top_k, logits.shape[-1]), dim=-1)
    probabilities = (values / sampling.temperature).softmax(dim=-1)
    return indices.gather(-1, torch.multinomial(probabilities, 1, generator=generator)).squeeze(-1)


@dataclass
class _Cache:
    """Keys and values seen so far by one attention module (B, H, T, dh each)."""

    keys: list[Tensor] = field(default_factory=list)
    values: list[Tensor] = field(default_factory=list)

    def extend(self, attention: Attention, memory: Tensor) -> tuple[Tensor, Tensor]:
        k, v = attention.keys_values(memory)
        self.keys.append(k)
        self.values.append(v)
        return torch.cat(self.keys, dim=2), torch.cat(self.values, dim=2)


@dataclass
class _Layer:
    self_cache: _Cache = field(default_factory=_Cache)
    other_cache: _Cache = field(default_factory=_Cache)


def _step_block(block: DslmBlock, cache: _Layer, h: Tensor, other: Tensor, lyrics: Tensor, to_lyrics: Tensor,
                sa_row: Tensor, bca_row: Tensor) -> Tensor:
    """One new position ``h`` (B, 1, D) through a block; ``other`` is the other stream's new layer input."""
    n = block.norms
    keys, values = cache.self_cache.extend(block.self_attention, n[0](h))
    h = h + block.self_attention.attend(n[0](h), keys, values, sa_row)
    h = h + block.lyrics_attention(n[1](h), lyrics, to_lyrics)
    keys, values = cache.other_cache.extend(block.bca, n[3](other))
    h = h + block.bca.attend(n[2](h), keys, values, bca_row)
    return h + block.ffn(n[4](h))


@torch.no_grad()
def generate(model: Dslm, lyrics: Tensor, lyrics_padding: Tensor, task: str, steps: int, *,
             sampling: Sampling = Sampling(), generator: torch.Generator | None = None,
             prompts: dict[str, Tensor] | None = None, use_cache: bool = True) -> dict[str, Tensor]:
    """Tokens ``{"vocals", "accompaniment", "song"}`` (B, steps) for a task whose generated streams are causal.

    ``prompts`` maps a stream to its prefix (B, P) (a vocal or accompaniment prompt); both streams get
    ``<bos>`` after their prompt, and the prompt lengths must match (one time axis).
    """
    masks = TASKS[task]
    if "noncausal" in (masks.vocals, masks.accompaniment):
        raise ValueError(f"{task}: generate() samples both streams; a given track is fed with model() instead")
    model.eval()
    config, batch = model.config, lyrics.shape[0]
    bos = torch.full((batch, 1), config.special("<bos>"), dtype=torch.long, device=lyrics.device)
    streams = {name: torch.cat([(prompts or {}).get(name, bos[:, :0]), bos], dim=1)
               for name in ("vocals", "accompaniment")}
    start = streams["vocals"].shape[1]
    if streams["accompaniment"].shape[1] != start:
        raise ValueError("the vocal and accompaniment prompts must have the same length (one time axis)")
    step = _cached_steps if use_cache else _full_steps
    step(model, lyrics, lyrics_padding, task, streams, start + steps, sampling, generator)
    song_logits = model(lyrics, lyrics_padding, streams["vocals"][:, :-1], streams["accompaniment"][:, :-1],
                        masks).song[:, start - 1 :]
    song = torch.stack([sample_logits(song_logits[:, t], sampling, generator) for t in range(steps)], dim=1)
    return {"vocals": streams["vocals"][:, start:], "accompaniment": streams["accompaniment"][:, start:],
            "song": song}


def _full_steps(model: Dslm, lyrics: Tensor, lyrics_padding: Tensor, task: str, streams: dict[str, Tensor],
                until: int, sampling: Sampling, generator: torch.Generator | None) -> None:
    while streams["vocals"].shape[1] < until:
        out = model(lyrics, lyrics_padding, streams["vocals"], streams["accompaniment"], TASKS[task])
        for name, logits in (("vocals", out.vocals), ("accompaniment", out.accompaniment)):
            streams[name] = torch.cat([streams[name], sample_logits(logits[:, -1], sampling, generator)[:, None]], 1)


def _cached_steps(model: Dslm, lyrics: Tensor, lyrics_padding: Tensor, task: str, streams: dict[str, Tensor],
                  until: int, sampling: Sampling, generator: torch.Generator | None) -> None:
    masks, d = TASKS[task], model.config.d_model
    text = model.encode_lyrics(lyrics, lyrics_padding)
    to_lyrics = (~lyrics_padding)[:, None, :]
    caches = [(_Layer(), _Layer()) for _ in model.vocals_decoder]
    sa = {name: self_attention_mask(kind, until, lyrics.device)
          for name, kind in (("vocals", masks.vocals), ("accompaniment", masks.accompaniment))}
    v_sees_a, a_sees_v = bidirectional_cross_attention_masks(masks.bca, until, lyrics.device)
    positions = sinusoids(until, d, lyrics.device)
    fed = 0
    while True:
        for t in range(fed, streams["vocals"].shape[1]):  # the prompt on the first pass, then one new token
            v = model.vocals_embedding(streams["vocals"][:, t : t + 1]) + positions[t]
            a = model.accompaniment_embedding(streams["accompaniment"][:, t : t + 1]) + positions[t]
            rows = (sa["vocals"][None, t : t + 1, : t + 1], sa["accompaniment"][None, t : t + 1, : t + 1],
                    v_sees_a[None, t : t + 1, : t + 1], a_sees_v[None, t : t + 1, : t + 1])
            for (vocal_block, accompaniment_block), (v_cache, a_cache) in zip(
                    zip(model.vocals_decoder, model.accompaniment_decoder, strict=True), caches, strict=True):
                v, a = (_step_block(cast(DslmBlock, vocal_block), v_cache, v, a, text, to_lyrics, rows[0], rows[2]),
                        _step_block(cast(DslmBlock, accompaniment_block), a_cache, a, v, text, to_lyrics, rows[1],
                                    rows[3]))
        fed = streams["vocals"].shape[1]
        if fed >= until:
            return
        for name, h, head in (("vocals", model.final_norms[0](v), model.heads[0]),
                              ("accompaniment", model.final_norms[1](a), model.heads[1])):
            streams[name] = torch.cat([streams[name], sample_logits(head(h)[:, -1], sampling, generator)[:, None]], 1)
