"""Publishing and comparing model artifacts under ``<root>/models/`` (reading them: ``pipeline.model_registry``).

Publishing mirrors dataset versions: files are copied into a staging folder under the root,
``artifact.json`` is written last, and the folder is moved to ``models/<kind>/<id>``. A folder
without ``artifact.json`` is never listed. Publishing what is already there changes nothing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from torch import Tensor

from ..pipeline.fingerprint import digest
from ..pipeline.model_registry import MODELS, artifact_dir, check_kind, load_model
from ..pipeline.storage import Storage
from ..schemas.model_artifact import ARTIFACT_FILE, ModelArtifact


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
    check_kind(kind)
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


def publish_weights(storage: Storage, kind: str, state: dict[str, Tensor], files: tuple[str, str],
                    saved_config: dict[str, Any], **record: Any) -> ModelArtifact:
    """Publish a model from its state dict and its config: ``files`` names the safetensors file and the JSON
    file; ``record`` is :func:`publish_model`'s keywords (name, summary, config, lineage, metrics)."""
    weights, config = files
    with tempfile.TemporaryDirectory() as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, f"{tmp}/{weights}")
        Path(tmp, config).write_text(json.dumps(saved_config, indent=2, sort_keys=True))
        return publish_model(storage, kind, Path(tmp), **record)


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
