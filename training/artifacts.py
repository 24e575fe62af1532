"""The model registry: publish, list, resolve and compare model artifacts under ``<root>/models/``.

Publishing mirrors dataset versions: files are copied into a staging folder under the root,
``artifact.json`` is written last, and the folder is moved to ``models/<kind>/<id>``. A folder
without ``artifact.json`` is never listed. Publishing what is already there changes nothing.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from pathlib import Path
from typing import Any

from ..pipeline.errors import UserError
from ..pipeline.fingerprint import digest
from ..pipeline.storage import Storage
from ..schemas.model_artifact import ARTIFACT_FILE, MODEL_KINDS, ModelArtifact

MODELS = "models"
#: shortest id prefix accepted by ``resolve_model`` (ids are 16 hex characters)
MIN_PREFIX = 6


def artifact_dir(kind: str, model_id: str) -> str:
    return f"{MODELS}/{kind}/{model_id}"


def _check_kind(kind: str) -> None:
    if kind not in MODEL_KINDS:
        raise UserError(f"unknown model kind {kind!r}: use one of {', '.join(MODEL_KINDS)}")


def _files(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"{folder} holds no files to publish")
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def publish_model(
    storage: Storage,
    kind: str,
    folder: Path,
    *,
    name: str,
    summary: str,
    config: dict[str, Any],
    lineage: dict[str, Any],
    metrics: dict[str, Any] | None = None,
) -> ModelArtifact:
    """Publish the files under local ``folder`` as an immutable model artifact; returns its record."""
    _check_kind(kind)
    files = _files(folder)
    draft = ModelArtifact(kind=kind, id="", name=name, summary=summary, config=config, lineage=lineage,
                          files=files, metrics=metrics or {})
    model_id = digest(draft.identity(), length=16)
    target = artifact_dir(kind, model_id)
    if storage.exists(f"{target}/{ARTIFACT_FILE}"):
        return load_model(storage, target)
    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    artifact = draft.model_copy(update={"id": model_id, "created": created})
    staging = f"{MODELS}/.staging-{uuid.uuid4().hex[:12]}"
    try:
        for rel in files:
            storage.write_bytes(f"{staging}/{rel}", (folder / rel).read_bytes())
        # written last: a folder without it is incomplete and never listed
        storage.write_bytes(f"{staging}/{ARTIFACT_FILE}", artifact.model_dump_json(indent=2).encode())
        storage.delete_dir(target)  # an incomplete earlier attempt
        storage.fs.create_dir(storage.full(f"{MODELS}/{kind}"), recursive=True)
        storage.fs.move(storage.full(staging), storage.full(target))
    finally:
        storage.delete_dir(staging)
    return artifact


def load_model(storage: Storage, rel_dir: str) -> ModelArtifact:
    return ModelArtifact.model_validate_json(storage.read_bytes(f"{rel_dir}/{ARTIFACT_FILE}"))


def list_models(storage: Storage, kind: str | None = None) -> list[ModelArtifact]:
    """Every published model (of ``kind``), oldest first."""
    kinds = [kind] if kind else [k for k in MODEL_KINDS if k in storage.list_dirs(MODELS)]
    found = [load_model(storage, artifact_dir(k, i)) for k in kinds for i in storage.list_dirs(f"{MODELS}/{k}")
             if storage.exists(f"{artifact_dir(k, i)}/{ARTIFACT_FILE}")]
    return sorted(found, key=lambda a: (a.created, a.kind, a.id))


def resolve_model(storage: Storage, ref: str) -> ModelArtifact:
    """A model from ``ID``, ``KIND/ID``, an id prefix (≥ 6 characters) or ``KIND/latest``."""
    kind, _, rest = ref.rpartition("/")
    if kind:
        _check_kind(kind)
    candidates = list_models(storage, kind or None)
    if rest == "latest" and kind:
        matches = candidates[-1:]
    else:
        matches = [a for a in candidates if a.id == rest] or (
            [a for a in candidates if a.id.startswith(rest)] if len(rest) >= MIN_PREFIX else [])
    if len(matches) != 1:
        what = "no model matches" if not matches else f"{len(matches)} models match"
        known = ", ".join(f"{a.kind}/{a.id}" for a in candidates) or "none"
        raise UserError(f"{what} {ref!r} under {storage.root} (use KIND/ID, an id prefix of at least "
                        f"{MIN_PREFIX} characters, or KIND/latest); models: {known}")
    return matches[0]


def local_folder(storage: Storage, artifact: ModelArtifact) -> Path:
    """The artifact's folder on this machine (libraries load weights from local files)."""
    if not storage.is_local:
        raise UserError(f"models under {storage.root} are not on this machine: copy the folder "
                        f"{artifact_dir(artifact.kind, artifact.id)} to a local root first")
    return Path(storage.full(artifact_dir(artifact.kind, artifact.id)))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, sub in value.items() for k, v in _flatten(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def diff_models(a: ModelArtifact, b: ModelArtifact) -> dict[str, dict[str, tuple[Any, Any]]]:
    """What differs between two models, per section (config, lineage, metrics, files): key -> (a, b)."""
    out: dict[str, dict[str, tuple[Any, Any]]] = {}
    for section in ("config", "lineage", "metrics", "files"):
        left, right = _flatten(getattr(a, section)), _flatten(getattr(b, section))
        changed = {k: (left.get(k), right.get(k)) for k in sorted({*left, *right}) if left.get(k) != right.get(k)}
        if changed:
            out[section] = changed
    return out
