"""FAD's embedders, by the name ``songcorpus evaluate --fad-embedder`` takes.

- ``own`` (the default): a frozen layer of the version's own tokenizer (``audio_metrics.tokenizer_embedder``).
- ``vggish``: VGGish, the embedder of the original FAD, through torchaudio's port (one 128-d embedding per
  0.96 s). Its weights are not in any wheel: torchaudio downloads them on first use into the torch hub cache.
  songcorpus never downloads at evaluation time, so it reads them from that cache (``weights_only=True``) and
  fails with what to do when they are not there.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor

from ..pipeline.errors import UserError
from ..stages.tokenize import load_tokenizer
from .audio_metrics import Embedder, tokenizer_embedder

FAD_EMBEDDERS = ("own", "vggish")
VGGISH_DIM = 128


def vggish_weights() -> Path:
    """Where torchaudio's ``VGGISH`` bundle keeps its weights (``download_asset("models/vggish.pt")``)."""
    return Path(torch.hub.get_dir()) / "torchaudio" / "models" / "vggish.pt"


def vggish_embedder() -> Embedder:
    path = vggish_weights()
    if not path.is_file():
        raise UserError(
            f"FAD[vggish] needs VGGish's weights at {path} (the torch hub cache; TORCH_HOME moves it), and they are "
            "not there. On a machine with network, `python -c \"from torchaudio.prototype.pipelines import VGGISH; "
            "VGGISH.get_model()\"` puts them there; copy that file here, or use --fad-embedder own")
    with warnings.catch_warnings():  # torchaudio's prototype pipelines warn about their deprecation on import
        warnings.simplefilter("ignore")
        from torchaudio.prototype.pipelines import VGGISH
    model = VGGISH.VGGish()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.eval()
    processor = VGGISH.get_input_processor()

    @torch.no_grad()
    def embed(audio: Tensor) -> Tensor:
        examples = processor(audio.float())
        return model(examples) if len(examples) else audio.new_zeros(0, VGGISH_DIM)

    return Embedder("vggish", VGGISH.sample_rate, embed)


def fad_embedder(name: str, tokenizer_folder: Path) -> Embedder:
    """The embedder called ``name`` (one of ``FAD_EMBEDDERS``); ``own`` reads the tokenizer artifact in
    ``tokenizer_folder``."""
    if name == "own":
        return tokenizer_embedder(load_tokenizer(tokenizer_folder), tokenizer_folder.name)
    if name == "vggish":
        return vggish_embedder()
    raise UserError(f"no FAD embedder {name!r}; choose one of {', '.join(FAD_EMBEDDERS)}")
