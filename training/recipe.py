"""The base of the small models' recipes: every setting that changes the weights, and its identity."""

from __future__ import annotations

import dataclasses
import hashlib
import json


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Subclasses are frozen dataclasses of settings; :meth:`digest` names the weights they make."""

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:16]
