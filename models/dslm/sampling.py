"""Sampling from the DSLM: top-k / temperature, for every task of the table, with or without a KV cache.

Each stream is laid out as in training (``models.dslm.batches``): ``[prompt, <bos>, x_0, ...]``. Per task:

- a generated stream (causal) starts from its prompt (if any) and ``<bos>``; at every step it adds one token,
  sampled from its last position's logits (vocals first, then accompaniment, from one generator);
- a given stream (non-causal: the accompaniment of accompaniment-to-song, the vocals of vocals-to-song) is fed
  whole, ``given[stream]``; it sees nothing of the generated one, so its states do not change while sampling;
- a stream the task leaves out (``none``) is all ``<pad>``, as in training, and is not returned.
When every step is done, the song decoder (non-autoregressive) reads both streams' final states and the song
tokens are sampled from it the same way (when both decoders take part).

With the cache, a step runs each layer on the new position only: self-attention and BCA reuse the keys and values
of the earlier positions (which no later position can change: the generated streams are causal), and a given
stream's keys and values are computed once, from one pass over it. The tokens are exactly those of the slow path,
which reruns the whole model at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor

from songcorpus.models.dslm.masks import TASKS, StreamMasks, TaskMasks, batch_masks
from songcorpus.models.dslm.model import Attention, Dslm, DslmBlock

STREAMS = ("vocals", "accompaniment")


@dataclass(frozen=True)
class Sampling:
    top_k: int = 50
    temperature: float = 0.9


def sample_logits(logits: Tensor, sampling: Sampling, generator: torch.Generator | None, codes: int) -> Tensor:
    """One semantic code per row of ``logits`` (B, V): the top ``k`` of the first ``codes`` kept, softened by the
    temperature. The special tokens after them are never drawn: a stream here has a fixed number of steps, so no
    position may end it, pad it or mark an edit."""
    logits = logits[..., :codes]
    values, indices = logits.float().topk(min(sampling.top_k, logits.shape[-1]), dim=-1)
    probabilities = (values / sampling.temperature).softmax(dim=-1)
    return indices.gather(-1, torch.multinomial(probabilities, 1, generator=generator)).squeeze(-1)


def roles(masks: TaskMasks) -> dict[str, str]:
    """``generated``, ``given`` or ``none`` for each decoder stream of a task."""
    return {name: {"causal": "generated", "noncausal": "given", "none": "none"}[kind]
            for name, kind in zip(STREAMS, (masks.vocals, masks.accompaniment), strict=True)}


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
    given: tuple[Tensor, Tensor] | None = None  # the BCA keys and values of a given other stream, every step


def _step_block(block: DslmBlock, cache: _Layer, h: Tensor, other: Tensor | None, lyrics: Tensor,
                to_lyrics: Tensor, sa_row: Tensor, bca_row: Tensor) -> Tensor:
    """One new position ``h`` (B, 1, D) through a block; ``other`` is the other stream's new layer input (None when
    the other stream is fixed: its keys and values are in the cache already)."""
    n = block.norms
    keys, values = cache.self_cache.extend(block.self_attention, n[0](h))
    h = h + block.self_attention.attend(n[0](h), keys, values, sa_row)
    h = h + block.lyrics_attention(n[1](h), lyrics, to_lyrics)
    if other is not None:
        keys, values = cache.other_cache.extend(block.bca, n[3](other))
    elif cache.given is not None:
        keys, values = cache.given
    else:
        raise ValueError("a stream stepping alone needs the fixed stream's keys and values in its cache")
    h = h + block.bca.attend(n[2](h), keys, values, bca_row)
    return h + block.ffn(n[4](h))


@torch.no_grad()
def generate(model: Dslm, lyrics: Tensor, lyrics_padding: Tensor, task: str, steps: int, *,
             sampling: Sampling = Sampling(), generator: torch.Generator | None = None,
             prompts: dict[str, Tensor] | None = None, given: dict[str, Tensor] | None = None,
             use_cache: bool = True) -> dict[str, Tensor]:
    """Tokens (B, steps) of the task's generated streams, and ``song`` when both decoders take part.

    ``prompts`` maps a stream to its prefix (B, P) (a vocal or accompaniment prompt, or an editing span ending in
    ``<EDIT>``); every stream that takes part needs one of the same length, or none at all. ``given`` maps the
    task's non-causal stream to its tokens (B, steps).
    """
    masks, model = TASKS[task], model.eval()
    role = roles(masks)
    given, prompts = given or {}, prompts or {}
    if {n for n, r in role.items() if r == "given"} != set(given):
        raise ValueError(f"{task}: pass given= for exactly its non-causal stream(s): "
                         f"{[n for n, r in role.items() if r == 'given'] or 'none'}, got {sorted(given)}")
    config, batch, device = model.config, lyrics.shape[0], lyrics.device
    pad, bos = config.special("<pad>"), config.special("<bos>")
    lengths = {p.shape[1] for p in prompts.values()}
    if len(lengths) > 1 or (prompts and set(prompts) != {n for n, r in role.items() if r != "none"}):
        raise ValueError("every stream that takes part needs a prompt of the same length (one time axis), or none")
    prompt = lengths.pop() if lengths else 0
    total = prompt + steps
    start = {n: torch.cat([prompts[n], torch.full((batch, 1), bos, device=device)], 1) if n in prompts
             else torch.full((batch, 1), bos, device=device) for n in STREAMS}
    inputs = {n: (torch.full((batch, total), pad, device=device) if r == "none"
                  else torch.cat([start[n], given[n][:, :-1]], 1) if r == "given" else start[n])
              for n, r in role.items()}
    generated = [n for n, r in role.items() if r == "generated"]
    (_cached_steps if use_cache else _full_steps)(model, lyrics, lyrics_padding, masks, inputs, generated, total,
                                                  sampling, generator)
    out = {n: inputs[n][:, prompt + 1 :] for n in generated}
    if "none" not in role.values():
        fed = {n: inputs[n][:, :total] for n in STREAMS}
        logits = model(lyrics, lyrics_padding, fed["vocals"], fed["accompaniment"], masks).song[:, prompt:]
        out["song"] = torch.stack([sample_logits(logits[:, t], sampling, generator, config.codes)
                                   for t in range(steps)], dim=1)
    return out


def _padded(x: Tensor, length: int, pad: int) -> Tensor:
    return torch.cat([x, x.new_full((x.shape[0], length - x.shape[1]), pad)], 1) if x.shape[1] < length else x


def _full_steps(model: Dslm, lyrics: Tensor, lyrics_padding: Tensor, masks: TaskMasks, inputs: dict[str, Tensor],
                generated: list[str], total: int, sampling: Sampling, generator: torch.Generator | None) -> None:
    pad = model.config.special("<pad>")
    while (fed := inputs[generated[0]].shape[1]) <= total:  # position fed - 1 predicts the next token
        full = {n: _padded(inputs[n], total, pad) for n in STREAMS}
        out = model(lyrics, lyrics_padding, full["vocals"], full["accompaniment"], masks)
        for name in generated:
            token = sample_logits(getattr(out, name)[:, fed - 1], sampling, generator, model.config.codes)
            inputs[name] = torch.cat([inputs[name], token[:, None]], 1)


def _cached_steps(model: Dslm, lyrics: Tensor, lyrics_padding: Tensor, masks: TaskMasks, inputs: dict[str, Tensor],
                  generated: list[str], total: int, sampling: Sampling, generator: torch.Generator | None) -> None:
    pad, device = model.config.special("<pad>"), lyrics.device
    text = model.encode_lyrics(lyrics, lyrics_padding)
    to_lyrics = (~lyrics_padding)[:, None, :]
    m = batch_masks(masks, total, device=device)
    blocks = [dict(zip(STREAMS, (cast(DslmBlock, v), cast(DslmBlock, a)), strict=True))
              for v, a in zip(model.vocals_decoder, model.accompaniment_decoder, strict=True)]
    caches = [{n: _Layer() for n in STREAMS} for _ in blocks]
    if len(generated) == 1:  # the other stream is fixed (given, or <pad>): its keys and values, from one pass
        (name,), layer_inputs = generated, list[tuple[Tensor, Tensor]]()
        full = {n: _padded(inputs[n], total, pad) for n in STREAMS}
        model.decode(*model.embed(full["vocals"], full["accompaniment"]), text, to_lyrics.expand(-1, total, -1), m,
                     layer_inputs)
        fixed = STREAMS.index(name) ^ 1
        for block, cache, states in zip(blocks, caches, layer_inputs, strict=True):
            cache[name].given = block[name].bca.keys_values(block[name].norms[3](states[fixed]))
    fed = 0
    while True:
        length = inputs[generated[0]].shape[1]
        for t in range(fed, length):  # the prompt on the first pass, then the new token
            h = dict(zip(STREAMS, model.embed(inputs["vocals"][:, t : t + 1], inputs["accompaniment"][:, t : t + 1],
                                              start=t), strict=True))
            for block, cache in zip(blocks, caches, strict=True):
                h = _step_layer(block, cache, h, generated, text, to_lyrics, m, t)
        fed = length
        for name, norm, head in zip(STREAMS, model.final_norms, model.heads, strict=False):
            if name in generated:
                token = sample_logits(head(norm(h[name]))[:, -1], sampling, generator, model.config.codes)
                inputs[name] = torch.cat([inputs[name], token[:, None]], 1)
        if fed + 1 > total:
            return


def _step_layer(block: dict[str, DslmBlock], cache: dict[str, _Layer], h: dict[str, Tensor], generated: list[str],
                text: Tensor, to_lyrics: Tensor, m: StreamMasks, t: int) -> dict[str, Tensor]:
    """Position ``t`` of the generated stream(s) through one layer: both in lockstep (BCA over the other's
    positions so far), or one beside a fixed stream (BCA over all of its positions)."""
    lockstep = len(generated) == 2
    width = t + 1 if lockstep else m.vocals.shape[-1]
    sees_other = {"vocals": m.vocals_see_accompaniment, "accompaniment": m.accompaniment_sees_vocals}
    own = {"vocals": m.vocals, "accompaniment": m.accompaniment}
    other = {"vocals": "accompaniment", "accompaniment": "vocals"}
    return {**h, **{n: _step_block(block[n], cache[n], h[n], h[other[n]] if lockstep else None, text, to_lyrics,
                                   own[n][:, t : t + 1, : t + 1], sees_other[n][:, t : t + 1, :width])
                    for n in generated}}
