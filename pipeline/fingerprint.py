"""Content fingerprints: same stage, version, config, weights and input → same key → same bytes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from json.encoder import encode_basestring
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
    """The key of one stage output (docs/design.md, "Fingerprint"): hash of everything that determines its bytes."""
    return stage_fingerprinter(stage=stage, version=version, config=config, weights=weights)(input_fingerprint)


def stage_fingerprinter(*, stage: str, version: int, config: dict, weights: str | None) -> Callable[[str], str]:
    """:func:`stage_fingerprint` for one stage as a function of the input alone.

    The canonical JSON of everything but the input is encoded once, so a fingerprint costs one
    sha256 (the driver plans every item of a 270k-song rerun this way). The text hashed is exactly
    ``canonical_json`` of the whole dict: keys in sorted order, the input between config and stage.
    """
    head = '{"config":' + canonical_json(config) + ',"input":'
    tail = (',"stage":' + canonical_json(stage) + ',"version":' + canonical_json(version)
            + ',"weights":' + canonical_json(weights) + "}")

    def fingerprint(input_fingerprint: str) -> str:
        text = head + encode_basestring(input_fingerprint) + tail  # = canonical_json of a str, in C
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    return fingerprint
