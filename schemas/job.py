"""The job spec: one TOML file that says what to read, which stages to run and how."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import Field, create_model, model_validator

from .base import StageConfig, StrictModel
from .stage_configs import (
    AlignConfig,
    FilterConfig,
    IngestConfig,
    SegmentConfig,
    SeparateConfig,
    ShardConfig,
    StandardizeConfig,
    TokenizeConfig,
)
from .train_configs import TrainSpec


@dataclass(frozen=True)
class StageDeclaration:
    """One stage as a job can enable it: its table name, its config type and where its code lives.

    ``implementation`` is ``module:Class``, imported by the engine only when the stage runs, so
    validating a job never imports torch, Demucs or WhisperX.
    """

    name: str
    config: type[StageConfig]
    implementation: str
    #: a job may leave it out and still enable the stages after it (tokenize: shards without tokens)
    optional: bool = False


#: Every stage a job can enable, in pipeline order; a stage needs every stage before it. This is the
#: one list a new stage is added to: the job-spec model, the order and the engine's lookup derive from it.
STAGES: tuple[StageDeclaration, ...] = (
    StageDeclaration("ingest", IngestConfig, "songcorpus.stages.ingest:IngestStage"),
    StageDeclaration("standardize", StandardizeConfig, "songcorpus.stages.standardize:StandardizeStage"),
    StageDeclaration("separate", SeparateConfig, "songcorpus.stages.separate:SeparateStage"),
    StageDeclaration("align", AlignConfig, "songcorpus.stages.align:AlignStage"),
    StageDeclaration("segment", SegmentConfig, "songcorpus.stages.segment:SegmentStage"),
    StageDeclaration("filter", FilterConfig, "songcorpus.stages.filter:FilterStage"),
    StageDeclaration("tokenize", TokenizeConfig, "songcorpus.stages.tokenize:TokenizeStage", optional=True),
    StageDeclaration("shard", ShardConfig, "songcorpus.stages.shard:ShardStage"),
)
STAGE_ORDER: tuple[str, ...] = tuple(d.name for d in STAGES)


def stage_declaration(name: str) -> StageDeclaration:
    for declaration in STAGES:
        if declaration.name == name:
            return declaration
    raise ValueError(f"unknown stage {name!r}; known stages: {list(STAGE_ORDER)}")


class SynthInput(StrictModel):
    """Generate a synthetic corpus under ``<root>/synth`` and ingest it (demo and tests)."""

    songs: int = Field(ge=1, le=100_000)
    seed: int = 0
    min_seconds: float = Field(20.0, gt=0)
    max_seconds: float = Field(40.0, gt=0)
    languages: tuple[str, ...] = Field(("en",), min_length=1, description="lyric languages, dealt to artists in turn")


class InputSpec(StrictModel):
    """Where the songs come from: exactly one of ``manifest``, ``directory`` or ``synth``.

    Relative paths in a manifest resolve against ``base_dir`` (default: the manifest's folder); a
    row whose path escapes ``base_dir`` is rejected.
    """

    manifest: str | None = Field(None, description="Parquet, CSV or JSONL manifest of songs")
    directory: str | None = Field(None, description="folder scanned for audio with .lrc/.txt sidecars")
    synth: SynthInput | None = None
    base_dir: str | None = Field(None, description="root that manifest paths resolve against")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> InputSpec:
        given = [k for k in ("manifest", "directory", "synth") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of manifest, directory or synth (got {given or 'none'})")
        return self


class RuntimeSpec(StrictModel):
    """How the engine runs: where Ray is, how patient it is, how often it retries."""

    address: str | None = Field(None, description="Ray cluster address; none = embedded local Ray")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the embedded local Ray (default: all)")
    stall_timeout_s: float = Field(1800.0, gt=0, description="abort a run that makes no progress this long")
    max_attempts: int = Field(3, ge=1, description="tries per item before a retryable rejection is final")
    ledger_flush_seconds: float = Field(
        10.0, gt=0, description="every outcome reaches the ledger within this many seconds of its item finishing "
        "at its stage: a killed driver redoes at most this much finished work (plus what was in flight)")
    fail_fast_items: int = Field(
        8, ge=0, description="a stage whose first this-many computed items (all, when fewer; at least 2) fail "
        "with one same error stops the run with that error (0: never)")


class _StagesBase(StrictModel):
    """Stage tables; a present table enables the stage (an empty table means defaults)."""

    def config(self, name: str) -> StageConfig | None:
        """The config of stage ``name``, or None when the job does not enable it."""
        return getattr(self, stage_declaration(name).name)

    def enabled(self) -> list[str]:
        """Enabled stages in pipeline order: a prefix of :data:`STAGE_ORDER`, where optional stages may be left out
        (an optional stage needs the stage before it)."""
        names = [name for name in STAGE_ORDER if self.config(name) is not None]
        required = [d.name for d in STAGES if not d.optional]
        present = [name for name in names if not stage_declaration(name).optional]
        orphans = [name for name in names if stage_declaration(name).optional
                   and STAGE_ORDER[STAGE_ORDER.index(name) - 1] not in names]
        if present != required[: len(present)] or orphans:
            raise ValueError(f"stages must be a prefix of {list(STAGE_ORDER)} (optional: "
                             f"{[d.name for d in STAGES if d.optional]}); got {names}")
        return names


if TYPE_CHECKING:  # static tools see the base; pydantic builds the real model from STAGES
    StagesSpec = _StagesBase
else:
    #: ``ingest`` is always on (its defaults apply when the job has no ``[stages.ingest]`` table).
    StagesSpec = create_model(
        "StagesSpec",
        __base__=_StagesBase,
        **{d.name: (d.config, d.config()) if d.name == STAGE_ORDER[0] else (d.config | None, None) for d in STAGES},
    )


class JobSpec(StrictModel):
    """A whole job. Validated before any work starts."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="job / dataset name (no dots or slashes)")
    root: str = Field(description="output root: local path or pyarrow.fs URI (s3://bucket/prefix)")
    input: InputSpec
    runtime: RuntimeSpec = RuntimeSpec()
    stages: StagesSpec = Field(default_factory=StagesSpec)
    train: TrainSpec = Field(default_factory=TrainSpec, description="what `songcorpus train` trains")

    @model_validator(mode="after")
    def _stages_form_a_prefix(self) -> JobSpec:
        self.stages.enabled()
        return self
