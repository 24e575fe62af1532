"""Reading the model registry: list, resolve and locate the model artifacts under ``<root>/models/``.

The engine and the stages read models (a stage names the trained model it used, ``tokenize`` finds the newest
tokenizer); ``training.artifacts`` publishes them. Artifacts follow ``schemas.model_artifact``.
"""

from __future__ import annotations

from pathlib import Path

from ..schemas.model_artifact import ARTIFACT_FILE, MODEL_KINDS, ModelArtifact
from .errors import UserError
from .references import LATEST_REF, match_id
from .storage import Storage

MODELS = "models"
#: shortest id prefix accepted by ``resolve_model`` (ids are 16 hex characters)


def artifact_dir(kind: str, model_id: str) -> str:
    return f"{MODELS}/{kind}/{model_id}"


def check_kind(kind: str) -> None:
    if kind not in MODEL_KINDS:
        raise UserError(f"unknown model kind {kind!r}: use one of {', '.join(MODEL_KINDS)}")


def load_model(storage: Storage, rel_dir: str) -> ModelArtifact:
    return ModelArtifact.model_validate_json(storage.read_bytes(f"{rel_dir}/{ARTIFACT_FILE}"))


def list_models(storage: Storage, kind: str | None = None) -> list[ModelArtifact]:
    """Every published model (of ``kind``), oldest first."""
    kinds = [kind] if kind else [k for k in MODEL_KINDS if k in storage.list_dirs(MODELS)]
    found = [load_model(storage, artifact_dir(k, i)) for k in kinds for i in storage.list_dirs(f"{MODELS}/{k}")
             if storage.exists(f"{artifact_dir(k, i)}/{ARTIFACT_FILE}")]
    return sorted(found, key=lambda a: (a.created, a.kind, a.id))


def resolve_model(storage: Storage, ref: str) -> ModelArtifact:
    """A model from ``ID``, ``KIND/ID``, an id prefix, or ``KIND/latest`` (see ``pipeline.references``)."""
    kind, _, rest = ref.rpartition("/")
    if kind:
        check_kind(kind)
    candidates = list_models(storage, kind or None)
    if rest == LATEST_REF and kind and candidates:
        return candidates[-1]  # sorted by when they were created
    chosen = match_id(rest, [a.id for a in candidates], what="model", where=storage.root,
                      forms="use KIND/ID, an id prefix, or KIND/latest")
    return next(a for a in candidates if a.id == chosen)


def local_folder(storage: Storage, artifact: ModelArtifact) -> Path:
    """The artifact's folder on this machine (libraries load weights from local files)."""
    if not storage.is_local:
        raise UserError(f"models under {storage.root} are not on this machine: copy the folder "
                        f"{artifact_dir(artifact.kind, artifact.id)} to a local root first")
    return Path(storage.full(artifact_dir(artifact.kind, artifact.id)))
