"""Shared pydantic base and the resource declaration every stage config carries."""

from __future__ import annotations

from pathlib import PurePath
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: where a stage's model runs: ``auto`` is the GPU when the worker holds one, else the CPU
Device = Literal["auto", "cpu", "cuda"]

#: what a local model folder reads as in a fingerprint (its weights hash says which weights it holds)
LOCAL_MODEL = "<local folder>"


class StrictModel(BaseModel):
    """A model that refuses unknown keys and cannot be mutated after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(StrictModel):
    """What one worker of a stage asks the cluster for, and how many workers may run.

    Resources never change a stage's output, so they are left out of its fingerprint.
    """

    num_cpus: float = Field(1.0, gt=0, description="CPUs reserved per worker (fractions allowed)")
    num_gpus: float = Field(0.0, ge=0, description="GPUs reserved per worker (fractions allowed)")
    batch_size: int = Field(4, ge=1, description="items handed to a worker at once")
    min_workers: int = Field(1, ge=1, description="actors kept alive for this stage")
    max_workers: int = Field(4, ge=1, description="actors the stage may scale up to")


class StageConfig(StrictModel):
    """Base of every stage's config: the stage's own settings plus its resources."""

    #: fields holding local paths, made absolute against the job's folder when the job is read
    path_fields: ClassVar[tuple[str, ...]] = ()
    #: fields holding model names or local model folders (a string, or a table of them): those that
    #: name an existing folder are made absolute, the others stay names (e.g. on the Hugging Face hub)
    model_ref_fields: ClassVar[tuple[str, ...]] = ()
    #: fields that say how the work runs (threads, items per forward pass), never what it computes: on a
    #: CPU the stage gives the same bytes whatever they are, so they stay out of the fingerprint as
    #: resources do (on a GPU the ledger keeps the first bytes written)
    execution_fields: ClassVar[tuple[str, ...]] = ()

    resources: Resources = Resources()

    @model_validator(mode="after")
    def _cuda_needs_a_gpu(self) -> StageConfig:
        if getattr(self, "device", None) == "cuda" and self.resources.num_gpus == 0:
            raise ValueError("device = 'cuda' but resources.num_gpus = 0: Ray places such a worker where no GPU is "
                             "reserved for it; set resources.num_gpus (e.g. 1), or device = 'auto'")
        return self

    def fingerprint_fields(self) -> dict:
        """The settings that change the stage's output: everything but resources, execution settings and
        where files live.

        Path fields and local model folders only say where model files are; the stage's weights hash
        covers what is in them. So a moved checkout changes no fingerprint and no version id.
        """
        fields = self.model_dump(mode="json", exclude={"resources", *self.execution_fields, *self.path_fields})
        for name in self.model_ref_fields:
            fields[name] = _names_only(fields[name])
        return fields


def _names_only(value: object) -> object:
    """A model reference with local folders (absolute once the job is read) replaced by a marker."""
    if isinstance(value, dict):
        return {k: _names_only(v) for k, v in value.items()}
    return LOCAL_MODEL if isinstance(value, str) and PurePath(value).is_absolute() else value
