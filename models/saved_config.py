"""What every model config shares: a frozen dataclass saved as JSON beside its weights, and named sizes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self, TypeVar

C = TypeVar("C")


class SavedConfig:
    """``to_dict`` / ``from_dict`` for a frozen dataclass of plain values that a checkpoint carries."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe values (tuples become lists)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """The inverse of ``to_dict``. Every field must be present: a default that changes later must not
        silently change what an old checkpoint means."""
        names = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown, missing = sorted(set(data) - names), sorted(names - set(data))
        if unknown or missing:
            raise ValueError(f"{cls.__name__}.from_dict: unknown keys {unknown}, missing keys {missing}; "
                             f"a checkpoint's config names every field of {cls.__name__}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def sized(sizes: Mapping[str, C], kind: str, size: str, **overrides: Any) -> C:
    """The named size of ``kind`` with some fields replaced, e.g. ``sized(SIZES, "DSLM", "tiny", codes=256)``."""
    if size not in sizes:
        raise ValueError(f"unknown {kind} size {size!r}; choose one of {sorted(sizes)}")
    base = sizes[size]
    unknown = sorted(set(overrides) - {field.name for field in dataclasses.fields(base)})  # type: ignore[arg-type]
    if unknown:
        raise ValueError(f"unknown {type(base).__name__} fields {unknown}")
    return dataclasses.replace(base, **overrides)  # type: ignore[type-var]
