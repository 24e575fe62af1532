"""The job spec: one TOML file that says what to read, which stages to run and how."""

from __future__ import annotations

from pydantic import Field, model_validator

from .base import StrictModel
from .stage_configs import (
    AlignConfig,
    FilterConfig,
    IngestConfig,
    SegmentConfig,
    SeparateConfig,
    ShardConfig,
    StandardizeConfig,
)

#: The pipeline order of the stages a job can enable. A stage needs every stage before it.
STAGE_ORDER: tuple[str, ...] = ("ingest", "standardize", "separate", "align", "segment", "filter", "shard")


class SynthInput(StrictModel):
    """Generate a synthetic corpus under ``<root>/synth`` and ingest it (demo and tests)."""

    songs: int = Field(ge=1, le=100_000)
    seed: int = 0
    min_seconds: float = Field(20.0, gt=0)
    max_seconds: float = Field(40.0, gt=0)


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


class StagesSpec(StrictModel):
    """Stage tables; a present table enables the stage (an empty table means defaults)."""

    ingest: IngestConfig = IngestConfig()
    standardize: StandardizeConfig | None = None
    separate: SeparateConfig | None = None
    align: AlignConfig | None = None
    segment: SegmentConfig | None = None
    filter: FilterConfig | None = None
    shard: ShardConfig | None = None

    def enabled(self) -> list[str]:
        """Enabled stages in pipeline order, checked to be a prefix of :data:`STAGE_ORDER`."""
        names = [name for name in STAGE_ORDER if getattr(self, name) is not None]
        if names != list(STAGE_ORDER[: len(names)]):
            raise ValueError(f"stages must be a prefix of {list(STAGE_ORDER)}; got {names}")
        return names


class JobSpec(StrictModel):
    """A whole job. Validated before any work starts."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="job / dataset name (no dots or slashes)")
    root: str = Field(description="output root: local path or pyarrow.fs URI (s3://bucket/prefix)")
    input: InputSpec
    runtime: RuntimeSpec = RuntimeSpec()
    stages: StagesSpec = StagesSpec()

    @model_validator(mode="after")
    def _stages_form_a_prefix(self) -> JobSpec:
        self.stages.enabled()
        return self
