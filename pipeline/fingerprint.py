"""Content fingerprints: same stage, version, config, weights and input → same key → same bytes."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace, so equal values always serialise to equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def digest(obj: Any, length: int = 32) -> str:
    """Hex sha256 of the canonical JSON of ``obj``, cut to ``length`` characters."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:length]


def stage_fingerprint(
    *, stage: str, version: int, config: dict, weights: str | None, input_fingerprint: str
) -> str:
    """The key of one stage output (DESIGN §3): hash of everything that determines its bytes."""
    return digest(
        {"stage": stage, "version": version, "config": config, "weights": weights, "input": input_fingerprint}
    )
