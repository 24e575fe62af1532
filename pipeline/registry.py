"""Stage names → stage classes, imported from the job schema's one declaration of every stage."""

from __future__ import annotations

import importlib

from ..schemas.job import stage_declaration
from .stage import Stage


def stage_class(name: str) -> type[Stage]:
    """The class of stage ``name``, imported on first use (so validating a job loads no model code)."""
    path = stage_declaration(name).implementation
    module_name, _, attr = path.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Stage)) or cls.name != name:
        raise TypeError(f"{path} is not the Stage subclass named {name!r}")
    return cls
