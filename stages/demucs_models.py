"""Loading Demucs separators by name, and building the tiny offline ("smoke") model.

Models load only through Demucs' own ``demucs.pretrained.get_model``: from a local model repository
(``repo``), or by name from the Hugging Face cache/hub. Where no hub can be reached (CI, offline
demo) :func:`build_smoke_repo` writes a small randomly initialised HTDemucs into a local repository
in Demucs' own format (a ``<sig>-<sha8>.th`` package plus a ``<name>.yaml`` bag), so the real
loading code runs on it. Its outputs are meaningless; every run that uses it says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
from fractions import Fraction
from pathlib import Path
from typing import TypedDict

import torch
import yaml
from demucs.apply import BagOfModels
from demucs.htdemucs import HTDemucs
from demucs.pretrained import get_model
from demucs.states import save_with_checksum

log = logging.getLogger(__name__)

SMOKE_MODEL = "smoke_htdemucs"
SMOKE_MARKER = "SMOKE_MODELS.json"
SOURCES = ["drums", "bass", "other", "vocals"]


class _HTDemucsKwargs(TypedDict, total=False):
    """The HTDemucs constructor arguments a smoke model overrides."""

    channels: int
    growth: int
    depth: int
    t_layers: int
    t_heads: int
    dconv_comp: int
    t_hidden_scale: float
    segment: Fraction


#: Random models buildable offline. ``smoke_htdemucs`` runs a song in seconds on one CPU with the
#: same architecture and code path as htdemucs; ``smoke_htdemucs_full`` has htdemucs' full size
#: (same compute as the pretrained model), for benchmarks.
SMOKE_KWARGS: dict[str, _HTDemucsKwargs] = {
    SMOKE_MODEL: {
        "channels": 4, "growth": 2, "depth": 4, "t_layers": 1, "t_heads": 1, "dconv_comp": 2,
        "t_hidden_scale": 1.0, "segment": Fraction(39, 5),
    },
    "smoke_htdemucs_full": {"segment": Fraction(39, 5)},
}


def build_smoke_repo(repo: Path, name: str = SMOKE_MODEL, seed: int = 0) -> Path:
    """Write a random tiny HTDemucs as model ``name`` into the local repository ``repo``.

    Deterministic for a seed; does nothing if the model is already there.
    """
    repo.mkdir(parents=True, exist_ok=True)
    bag_file = repo / f"{name}.yaml"
    if bag_file.exists():
        return repo
    if name not in SMOKE_KWARGS:
        raise ValueError(f"unknown smoke model {name!r}; known: {sorted(SMOKE_KWARGS)}")
    torch.manual_seed(seed)
    model = HTDemucs(SOURCES, samplerate=44100, audio_channels=2, **SMOKE_KWARGS[name])
    args, kwargs = model._init_args_kwargs
    package = {
        "klass": HTDemucs, "args": args, "kwargs": kwargs,
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training_args": {"smoke": True, "seed": seed},
    }
    signature = f"{name}_s{seed}"
    save_with_checksum(package, repo / f"{signature}.th")
    tmp = bag_file.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump({"models": [signature]}))
    tmp.replace(bag_file)
    marker = repo / SMOKE_MARKER
    known = json.loads(marker.read_text())["models"] if marker.exists() else []
    marker.write_text(json.dumps({"models": sorted({*known, name}), "random_weights": True}))
    log.info("built smoke Demucs model %s in %s", name, repo)
    return repo


def is_smoke(model: str, repo: str | None) -> bool:
    marker = Path(repo) / SMOKE_MARKER if repo else None
    return marker is not None and marker.exists() and model in json.loads(marker.read_text())["models"]


def load_separator(model: str, repo: str | None) -> BagOfModels | HTDemucs:
    """Load a Demucs model through ``get_model``, with errors that say how to fix them.

    A ``smoke_*`` model missing from ``repo`` is built first, so the offline demo runs anywhere.
    """
    if repo is not None and model in SMOKE_KWARGS:
        build_smoke_repo(Path(repo), model)
    if repo is not None and not Path(repo).is_dir():
        raise ValueError(f"stages.separate.repo: {repo} is not a folder of Demucs models")
    try:
        separator = get_model(model, repo=Path(repo) if repo else None)
    except SystemExit as exc:  # demucs calls fatal() -> sys.exit on unknown names
        raise ValueError(f"Demucs cannot load model {model!r} from {repo or 'the hub'}: {exc}") from None
    except Exception as exc:
        where = f"the local repository {repo}" if repo else "the Hugging Face hub/cache"
        raise ValueError(
            f"Demucs cannot load model {model!r} from {where}: {exc}. Offline? Download the model once "
            "into the Hugging Face cache, point stages.separate.repo at a local Demucs repository, or use "
            f"model = '{SMOKE_MODEL}' with a repo folder for a random test model."
        ) from exc
    separator.eval()
    return separator


def weights_digest(separator: BagOfModels | HTDemucs) -> str:
    """sha256 of every parameter and buffer (and the bag's weights): the model's identity."""
    h = hashlib.sha256()
    models = separator.models if isinstance(separator, BagOfModels) else [separator]
    for sub in models:
        h.update(type(sub).__name__.encode())
        for key, tensor in sorted(sub.state_dict().items()):
            h.update(key.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    if isinstance(separator, BagOfModels):
        h.update(json.dumps(separator.weights).encode())
    return h.hexdigest()[:32]
