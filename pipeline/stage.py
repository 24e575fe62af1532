"""The stage contract (docs/design.md, "Stage"): a named, versioned unit of work with one outcome per item."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

import pyarrow as pa

from ..schemas.base import StageConfig
from ..schemas.job import InputSpec
from ..schemas.records import Outcome
from .storage import Storage

C = TypeVar("C", bound=StageConfig)


class Reject(Exception):
    """Raised inside :meth:`Stage.process` to reject an item with a machine-readable reason.

    ``retryable`` says whether trying again could change the outcome (a flaky read, an OOM); a
    deterministic rejection (too long, undecodable) is final for its fingerprint.
    """

    def __init__(self, reason: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class StageContext:
    """What a stage may touch: the output root, and the folder relative input paths resolve against."""

    storage: Storage
    input_base: str | None = None
    run_id: str = ""
    #: the job spec (JSON form) on the driver, for barrier stages that publish what made their output
    job: dict | None = None
    #: on the driver, for barrier stages: every enabled stage's identity (version + output config)
    stage_identities: dict[str, str] = field(default_factory=dict)
    #: on the driver, for barrier stages: this run's rejections by reason, per stage logged so far
    rejects: dict[str, dict[str, int]] = field(default_factory=dict)
    #: on the driver, for barrier stages: what the stages so far said a reader must know (e.g. test models)
    notices: list[str] = field(default_factory=list)
    #: in a worker: the CPUs Ray gave it (after fitting, not what the config asked for); None on the driver
    cpus: float | None = None


@dataclass
class Source:
    """The rows a source stage starts from, and the folder their relative paths resolve against."""

    rows: list[dict]
    input_base: str | None
    notices: list[str]


@dataclass
class Result:
    """An ok outcome: the output record and the seconds of audio it covers (for throughput)."""

    record: dict
    audio_seconds: float = 0.0


class Stage(ABC, Generic[C]):
    """Base of every stage. Subclasses set ``name`` and ``version``; the config type is the type argument.

    A stage object lives in one worker (a Ray actor): ``setup`` loads models once, then
    ``process`` is called per item. ``process`` returns a :class:`Result` or raises
    :class:`Reject`; any other exception becomes a retryable rejection of that item alone.
    A stage that starts a pipeline is a :class:`SourceStage`; one whose outcomes are revised
    together on the driver is a :class:`BarrierStage`; one batched across items, a :class:`BatchStage`.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    #: Rejections that depend on other items (duplicates) and are decided afresh every run.
    recheck_reasons: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: C, context: StageContext) -> None:
        self.config = config
        self.context = context
        self._timings: dict[str, float] = {}
        self._timings_lock = threading.Lock()  # sub-steps may run on a stage's writer threads

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Time a sub-step (``with self.timed("decode"): ...``); the report sums them per stage."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add_timing(step, time.perf_counter() - started)

    def add_timing(self, step: str, seconds: float) -> None:
        with self._timings_lock:
            self._timings[step] = self._timings.get(step, 0.0) + seconds

    def peek_timings(self) -> dict[str, float]:
        with self._timings_lock:
            return dict(self._timings)

    def take_timings(self) -> dict[str, float]:
        """Seconds per sub-step since the last call (the engine calls it around each batch)."""
        with self._timings_lock:
            timings, self._timings = self._timings, {}
        return timings

    def setup(self) -> None:
        """Load models and other per-worker state. Called once per worker before any item."""

    def preflight(self) -> None:
        """Check on the driver, before any work, that what this stage needs is there (its models load, its
        paths exist); raise with what to change. :meth:`weights_hash` runs right after it."""

    def notices(self) -> list[str]:
        """Lines the run report must show first (e.g. that a smoke-test model was used)."""
        return []

    @classmethod
    def skip_reason(cls, config: StageConfig, storage: Storage) -> str | None:
        """Why an optional stage sits this run out (the run goes on without it and says so), else None."""
        return None

    def weights_hash(self) -> str | None:
        """Hash of the model weights this stage uses (part of its fingerprint); None if it has none."""
        return None

    @abstractmethod
    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        """Compute one item. ``fingerprint`` names this output, e.g. for artifact paths."""

    def process_batch(self, items: list[tuple[str, dict, str]]) -> list[Result | BaseException]:
        """Compute several ``(item_id, record, fingerprint)`` at once; one result or exception per item.

        The default calls :meth:`process` per item. Stages that gain from batching across items
        (a GPU model fed segments of many songs) derive from :class:`BatchStage` instead.
        """
        results: list[Result | BaseException] = []
        for item_id, record, fingerprint in items:
            try:
                results.append(self.process(item_id, record, fingerprint))
            except Exception as exc:  # noqa: BLE001 - becomes this item's rejection
                results.append(exc)
        return results

    @classmethod
    def report_section(cls, rows: pa.Table, storage: Storage) -> dict | None:
        """What this stage adds to the run report, from its ledger rows of the run (records filled in).

        A section is ``{"title", "lines", "histograms", "table"}`` (see ``pipeline.report``): the
        engine renders it in the HTML report and prints its lines, knowing nothing of the stage.
        """
        return None


def is_barrier(cls: type[Stage]) -> bool:
    """True for a stage whose phase ends with it (its outcomes are revised together on the driver)."""
    return issubclass(cls, BarrierStage)


class SourceStage(Stage[C]):
    """A stage that starts a pipeline: it turns the job's input into rows."""

    @classmethod
    @abstractmethod
    def read_source(cls, job_input: InputSpec, storage: Storage) -> Source:
        """The job's input as rows of ``item_id``, ``fingerprint``, ``record``."""


class BarrierStage(Stage[C]):
    """A stage that ends its phase: it sees all of its outcomes on the driver (``finalize``) before the next
    phase starts, and says what the next phase's items are (``hand_off``)."""

    def finalize(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Revise all outcomes at once on the driver (e.g. find duplicates, write a table of them all)."""
        return outcomes

    def hand_off(self, item_id: str, fingerprint: str, record: dict) -> tuple[str, str]:
        """The (item id, input fingerprint) the next phase sees for an ok output.

        Called on the driver for each ok outcome after :meth:`finalize`, and in the worker to set the
        output's lineage, so it depends on the record alone. The default passes both through. Ingest
        overrides it: manifest rows become song ids, and the fingerprint becomes the song's content
        identity, so moving or renaming files does not invalidate anything downstream. Inside a phase
        fingerprints always pass through, which is what lets the driver plan every stage's fingerprint
        before anything runs.
        """
        return item_id, fingerprint


class BatchStage(Stage[C]):
    """A stage whose work is batched across items (a model fed the pieces of many songs at once).

    Subclasses implement :meth:`process_batch`; :meth:`process` is the batch of one, raising its failure.
    """

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        result = self.process_batch([(item_id, record, fingerprint)])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    @abstractmethod
    def process_batch(self, items: list[tuple[str, dict, str]]) -> list[Result | BaseException]:
        """One result or exception per ``(item_id, record, fingerprint)``, in order."""
