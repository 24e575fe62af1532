"""What a stage says about the model it used: smoke-test, trained here, or named by the user.

A model folder that lies inside a published model artifact (``<root>/models/<kind>/<id>/…``, e.g.
the small separator and aligner trained on the synthetic corpus) carries ``artifact.json`` next
to it; its one-line summary goes into the run report and the data card.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..schemas.model_artifact import ARTIFACT_FILE, ModelArtifact

#: files that hold a Hugging Face model's identity (weights and architecture)
HF_WEIGHT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")


def enclosing_artifact(folder: str | Path) -> ModelArtifact | None:
    """The model artifact that ``folder`` belongs to (itself or up to two parents), if any."""
    path = Path(folder)
    for candidate in (path, *list(path.parents)[:2]):
        record = candidate / ARTIFACT_FILE
        if record.is_file():
            return ModelArtifact.model_validate_json(record.read_text())
    return None


def trained_model_notice(stage: str, folder: str | Path) -> str | None:
    """``"<stage> used model <kind>/<id> (<name>): <summary>"`` for a folder inside an artifact."""
    artifact = enclosing_artifact(folder)
    if artifact is None:
        return None
    return f"{stage} used model {artifact.kind}/{artifact.id} ({artifact.name}): {artifact.summary}"


def hf_folder_digest(folder: Path) -> str:
    """sha256 of a local Hugging Face model folder's config and weights: a retrained model re-runs the stage."""
    h = hashlib.sha256()
    for name in HF_WEIGHT_FILES:
        if (folder / name).is_file():
            h.update(name.encode())
            h.update((folder / name).read_bytes())
    return h.hexdigest()[:32]

