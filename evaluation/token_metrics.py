"""Token-level evaluation of a DSLM: per recipe (task) and stream, cross-entropy, perplexity and top-1 accuracy
on held-out clips, fed exactly as the training mix feeds them (``models.dslm.batches``) but with no lyrics hidden
and a fixed seed for the hidden tokens of a given track, so two models are judged on identical inputs. Also
samples token sequences for the LDM to decode."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..models.dslm import Dslm
from ..models.dslm.batches import IGNORE, RECIPES, STREAMS, Example, Masking, make_batch
from ..models.dslm.sampling import Sampling, generate

#: seeds the hidden tokens of a given track and the sampling: the same inputs for every model judged
EVALUATION_SEED = 20240


@torch.no_grad()
def token_metrics(model: Dslm, examples: Sequence[Example], recipes: Sequence[str] = tuple(RECIPES),
                  batch_size: int = 8) -> dict[str, dict[str, dict[str, float]]]:
    """``{recipe: {stream: {tokens, cross_entropy, perplexity, accuracy}}}`` over ``examples``."""
    model.eval()
    device = next(model.parameters()).device
    results: dict[str, dict[str, dict[str, float]]] = {}
    for recipe in recipes:
        generator = torch.Generator().manual_seed(EVALUATION_SEED)
        totals = {stream: [0.0, 0, 0] for stream in STREAMS}  # summed CE, correct, predicted tokens
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            batch = make_batch(chunk, [recipe] * len(chunk), model.config, Masking(), generator, train=False)
            batch = batch.to(device)
            out = model(batch.lyrics, batch.lyrics_padding, batch.vocals, batch.accompaniment, batch.masks,
                        batch.padding)
            for stream in STREAMS:
                logits, target = getattr(out, stream).float(), batch.targets[stream]
                where = target != IGNORE
                totals[stream][0] += float(F.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE,
                                                           reduction="sum"))
                totals[stream][1] += int((logits.argmax(-1)[where] == target[where]).sum())
                totals[stream][2] += int(where.sum())
        results[recipe] = {
            stream: {"tokens": count, "cross_entropy": round(ce / count, 4),
                     "perplexity": round(math.exp(min(ce / count, 50.0)), 3), "accuracy": round(correct / count, 4)}
            for stream, (ce, correct, count) in totals.items() if count
        }
    return results


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """``ours - theirs`` for every (recipe, stream, metric) both have (lower cross-entropy is better)."""
    return {recipe: {stream: {metric: round(value - theirs[recipe][stream][metric], 4)
                              for metric, value in scores.items() if metric != "tokens"}
                     for stream, scores in streams.items() if stream in theirs.get(recipe, {})}
            for recipe, streams in ours.items() if recipe in theirs}


@torch.no_grad()
def sample_tokens(model: Dslm, examples: Sequence[Example], task: str = "lyrics_to_song",
                  sampling: Sampling | None = None, seed: int = EVALUATION_SEED) -> dict[str, np.ndarray]:
    """Generated ``<clip_id>.<stream>`` token arrays (as long as each clip) for the LDM to decode."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    out: dict[str, np.ndarray] = {}
    for example in examples:
        lyrics = torch.tensor([example.lyrics], device=device)
        tokens = generate(model, lyrics, torch.zeros_like(lyrics, dtype=torch.bool), task, example.steps,
                          sampling=sampling or Sampling(), generator=generator)
        for stream, values in tokens.items():
            out[f"{example.clip_id}.{stream}"] = values[0].cpu().numpy().astype(np.int64)
    return out


def sections(model_id: str, metrics: dict[str, Any], loss_curves: dict[str, Sequence[float]],
             difference: dict[str, Any] | None = None, against: str | None = None) -> list[dict[str, Any]]:
    """Report sections: the training loss curves and one table row per (recipe, stream)."""
    columns = ["task", "stream", "tokens", "cross-entropy", "perplexity", "top-1 accuracy"]
    if difference is not None:
        columns += [f"Δ CE vs {against}", f"Δ accuracy vs {against}"]
    rows = []
    for recipe, streams in metrics.items():
        for stream, s in streams.items():
            row = [recipe, stream, s["tokens"], s["cross_entropy"], s["perplexity"], s["accuracy"]]
            if difference is not None:
                d = difference.get(recipe, {}).get(stream, {})
                row += [d.get("cross_entropy", "n/a"), d.get("accuracy", "n/a")]
            rows.append(row)
    return [
        {"title": "Training loss", "curves": [{"title": "loss per optimizer step", "series": dict(loss_curves),
                                               "xlabel": "step", "ylabel": "CE(v) + CE(a) + CE(song)",
                                               "id": "loss"}]},
        {"title": f"Token metrics of dslm/{model_id}", "table": {"columns": columns, "rows": rows,
                                                                  "empty": "No held-out clips."}},
    ]
