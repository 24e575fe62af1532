"""A tokenizer artifact with random weights and centroids, for tests and benchmarks that need one fast.

Its tokens mean nothing; their shape, rate and flow through the stages and shards are real. The normaliser is
fitted on white noise, as a trained tokenizer's is on its corpus, so the network runs on well-scaled features.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..models.bestrq import Tokenizer, config_for
from ..pipeline.storage import Storage
from ..schemas.model_artifact import TOKENIZER_CONFIG, TOKENIZER_WEIGHTS, ModelArtifact
from .artifacts import publish_model


def publish_smoke_tokenizer(storage: Storage, seed: int = 0, size: str = "tiny", codes: int = 64,
                            layer: int = 1) -> ModelArtifact:
    torch.manual_seed(seed)
    config = config_for(size)
    tokenizer = Tokenizer(config, layer=layer, num_codes=codes)
    tokenizer.bestrq.normalizer.update(*tokenizer.bestrq.front_end(torch.randn(2, config.sample_rate)))
    tokenizer.semantic.set_centroids(torch.randn(codes, config.d_model))
    with tempfile.TemporaryDirectory() as tmp:
        save_file({k: v.contiguous() for k, v in tokenizer.state_dict().items()}, f"{tmp}/{TOKENIZER_WEIGHTS}")
        Path(tmp, TOKENIZER_CONFIG).write_text(json.dumps({"bestrq": config.to_dict(), "layer": layer,
                                                           "codes": codes}, sort_keys=True))
        return publish_model(storage, "tokenizer", Path(tmp), name=f"smoke-bestrq-{size}",
                             summary=f"random BEST-RQ {size} and random centroids (seed {seed}): smoke test only",
                             config={"seed": seed, "size": size, "codes": codes, "layer": layer},
                             lineage={"random_weights": True})
