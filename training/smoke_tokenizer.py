"""A tokenizer artifact with random weights, for tests and benchmarks that need one fast.

By default its centroids are random too: its tokens mean nothing (most frames fall to a couple of codes), but their
shape, rate and flow through the stages and shards are real. With ``fit_on`` clips, the normaliser is fitted on
them and the centroids are k-means centroids of the random encoder's layer there, so the tokens spread over the
codebook and follow the audio (what a model that reads tokens needs in order to learn anything); otherwise the
normaliser is fitted on white noise, as a trained tokenizer's is on its corpus.
"""

from __future__ import annotations

import torch

from ..models.bestrq import Tokenizer, config_for
from ..pipeline.storage import Storage
from ..schemas.model_artifact import TOKENIZER_CONFIG, TOKENIZER_WEIGHTS, ModelArtifact
from .artifacts import publish_weights
from .tokenizer import kmeans, layer_frames


def publish_smoke_tokenizer(storage: Storage, seed: int = 0, size: str = "tiny", codes: int = 64,
                            layer: int = 1, fit_on: list[torch.Tensor] | None = None) -> ModelArtifact:
    """Publish it under ``storage``; ``fit_on``: mono clips at 24 kHz to fit the normaliser and k-means on."""
    torch.manual_seed(seed)
    config = config_for(size)
    tokenizer = Tokenizer(config, layer=layer, num_codes=codes)
    for clip in fit_on or [torch.randn(2, config.sample_rate)]:
        tokenizer.bestrq.normalizer.update(*tokenizer.bestrq.front_end(clip.reshape(-1, clip.shape[-1])))
    if fit_on:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            frames = layer_frames(tokenizer, fit_on, 50_000, generator)
        tokenizer.semantic.set_centroids(kmeans(frames, codes, 10, generator))
    else:
        tokenizer.semantic.set_centroids(torch.randn(codes, config.d_model))
    return publish_weights(storage, "tokenizer", tokenizer.state_dict(), (TOKENIZER_WEIGHTS, TOKENIZER_CONFIG),
                           {"bestrq": config.to_dict(), "layer": layer, "codes": codes}, name=f"smoke-bestrq-{size}",
                           summary=(f"random BEST-RQ {size} (seed {seed}) and "
                                    f"{'k-means' if fit_on else 'random'} centroids: for tests only"),
                           config={"seed": seed, "size": size, "codes": codes, "layer": layer,
                                   "fitted_clips": len(fit_on or [])},
                           lineage={"random_weights": True})
