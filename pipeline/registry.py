"""Stage names → stage classes, resolved by import path so the engine never imports stage code."""

from __future__ import annotations

import importlib

from .stage import Stage

_STAGES: dict[str, str] = {
    "ingest": "songcorpus.stages.ingest:IngestStage",
    "standardize": "songcorpus.stages.standardize:StandardizeStage",
    "separate": "songcorpus.stages.separate:SeparateStage",
    "align": "songcorpus.stages.align:AlignStage",
    "segment": "songcorpus.stages.segment:SegmentStage",
    "filter": "songcorpus.stages.filter:FilterStage",
    "shard": "songcorpus.stages.shard:ShardStage",
}


def stage_class(name: str) -> type[Stage]:
    try:
        module_name, _, attr = _STAGES[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; known stages: {sorted(_STAGES)}") from None
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise TypeError(f"{_STAGES[name]} is not a Stage subclass")
    return cls
