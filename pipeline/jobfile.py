"""Load a job TOML into a validated :class:`JobSpec`, with errors that name the key and the fix."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ..schemas.job import STAGES, JobSpec
from .errors import UserError


class JobSpecError(UserError):
    """The job file is not valid; the message lists every problem with its key path."""


def _describe(err: ErrorDetails) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required value is missing"
    got = err.get("input")
    got_text = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{path}: {err['msg']}{got_text}"


#: Keys holding paths; local ones are made absolute when the job is read (see :func:`resolve_local`), so
#: that every Ray worker sees the same files whatever its working directory.
PATH_KEYS = (("root",), ("input", "manifest"), ("input", "directory"), ("input", "base_dir"),
             *(("stages", d.name, field) for d in STAGES for field in d.config.path_fields))
#: The songcorpus project this code runs from (its jobs/ and assets/): the same path on every node of a cluster.
PROJECT = Path(__file__).resolve().parents[1]


#: Keys holding model names or local model folders: values that name an existing folder become absolute.
MODEL_KEYS = tuple(("stages", d.name, field) for d in STAGES for field in d.config.model_ref_fields)


def _parent(data: dict, keys: tuple[str, ...]) -> dict | None:
    parent: object = data  # a nested table, or whatever the user wrote in its place
    for key in keys[:-1]:
        parent = parent.get(key) if isinstance(parent, dict) else None
    return parent if isinstance(parent, dict) else None


def resolve_local(value: str, base: Path) -> Path:
    """A relative path of a job: under ``base`` (the current folder) when it is there, else under the
    songcorpus project when it is there (a job's ``assets/...`` under ``ray job submit``, whose driver runs
    in a temporary copy of the shipped folder), else under ``base``."""
    here = (base / value).resolve()
    if here.exists() or Path(value).is_absolute():
        return here
    shipped = (PROJECT / value).resolve()
    return shipped if shipped.exists() else here


def _local_folder(value: str, base: Path) -> str:
    folder = resolve_local(value, base)
    return str(folder) if "://" not in value and folder.is_dir() else value


def _absolute_paths(data: dict, base: Path) -> None:
    for keys in PATH_KEYS:
        parent = _parent(data, keys)
        value = parent.get(keys[-1]) if parent else None
        if parent and isinstance(value, str) and "://" not in value:
            # an output root is where the user runs; inputs and models may also be the project's own
            parent[keys[-1]] = str((base / value).resolve() if keys == ("root",) else resolve_local(value, base))
    for keys in MODEL_KEYS:
        parent = _parent(data, keys)
        value = parent.get(keys[-1]) if parent else None
        if parent and isinstance(value, str):
            parent[keys[-1]] = _local_folder(value, base)
        elif parent and isinstance(value, dict):
            parent[keys[-1]] = {k: _local_folder(v, base) if isinstance(v, str) else v for k, v in value.items()}


def parse_job(text: str, *, source: str = "<job>", root: str | None = None, base: Path | None = None) -> JobSpec:
    """Parse and validate job TOML text; ``root`` overrides the job's own output root.

    Relative local paths resolve against ``base`` (default: the current folder).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise JobSpecError(f"{source}: not valid TOML: {exc}") from None
    if root is not None:
        data["root"] = root
    _absolute_paths(data, base or Path.cwd())
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e) for e in exc.errors())
        raise JobSpecError(f"{source}: invalid job spec:\n  {problems}") from None


def load_job(path: str | Path, *, root: str | None = None) -> tuple[JobSpec, str]:
    """Read a job file. Relative paths resolve against the current folder (see :func:`resolve_local`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JobSpecError(f"job file not found: {path}") from None
    return parse_job(text, source=str(path), root=root), text
