"""The run tracker: one small actor per run that counts item starts and finishes across workers.

It exists for what no single worker can know: how often an item was started without finishing,
because the process that held it died (a segfaulting decoder, an out-of-memory kill). Ray Data
retries such a batch on a fresh actor forever, so a poison item would loop; the tracker lets the
next worker see the deaths, isolate the culprit and reject it (``worker_died``) after
``max_attempts``. It also carries every outcome's ledger row from the worker that computed it to the
driver, which drains them every second (``drain``): an item's outcome reaches the ledger within the
flush interval of the item finishing at its stage, not when its row leaves the phase. And it counts
the library warnings workers saw.

It runs on the driver's node (pinned), so losing a worker node never loses it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import cast

import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ..schemas.records import OK


@dataclass
class StageCounts:
    ok: int = 0
    rejected: int = 0
    #: item starts that never finished: the worker died with the item in hand
    deaths: int = 0
    timings: Counter = field(default_factory=Counter)


class RunTracker:
    """Actor state; methods are called once per batch by workers and every poll by the driver."""

    def __init__(self) -> None:
        self._unfinished: dict[tuple[str, str], int] = {}
        self._deaths: dict[tuple[str, str], int] = {}
        self._counts: dict[str, StageCounts] = {}
        self._warnings: Counter = Counter()
        self._outcomes: list[pa.Table] = []

    def begin(self, stage: str, item_ids: list[str]) -> tuple[bool, list[int]]:
        """Start ``item_ids``; returns (started, earlier deaths per item).

        A batch of several items of which one has died before is not started: the worker retries
        its items one at a time, so the culprit is found and its batch-mates finish.
        """
        counts = self._counts.setdefault(stage, StageCounts())
        for item in item_ids:
            # a start still open means the worker holding the item died: that was a death
            if self._unfinished.pop((stage, item), 0):
                self._deaths[(stage, item)] = self._deaths.get((stage, item), 0) + 1
                counts.deaths += 1
        deaths = [self._deaths.get((stage, item), 0) for item in item_ids]
        if any(deaths) and len(item_ids) > 1:
            return False, deaths
        for item in item_ids:
            self._unfinished[(stage, item)] = 1
        return True, deaths

    def finish(self, stage: str, item_ids: list[str], timings: dict[str, float], outcomes: pa.Table) -> None:
        """``item_ids`` are done at ``stage``; ``outcomes`` are their ledger rows, kept for the driver's drain."""
        self._outcomes.append(outcomes)
        ok = int(pc.sum(pc.equal(outcomes["status"], OK)).as_py() or 0)
        rejected = outcomes.num_rows - ok
        for item in item_ids:
            self._unfinished.pop((stage, item), None)
        counts = self._counts.setdefault(stage, StageCounts())
        counts.ok += ok
        counts.rejected += rejected
        counts.timings.update(timings)

    def warn(self, messages: dict[str, int]) -> None:
        self._warnings.update(messages)

    def drain(self) -> tuple[dict, list[pa.Table]]:
        """The snapshot, and the ledger rows handed in since the last drain (the driver logs them)."""
        outcomes, self._outcomes = self._outcomes, []
        return self.snapshot(), outcomes

    def snapshot(self) -> dict:
        """Per stage ok / rejected / deaths / sub-step seconds, and the warnings seen, for the driver."""
        return {
            "stages": {
                name: {"ok": c.ok, "rejected": c.rejected, "deaths": c.deaths, "timings": dict(c.timings)}
                for name, c in self._counts.items()
            },
            "warnings": dict(self._warnings),
        }


class Tracker:
    """The run's tracker actor, started on first use: a run with nothing to compute starts none."""

    def __init__(self) -> None:
        self._actor: ray.actor.ActorHandle | None = None

    def actor(self) -> ray.actor.ActorHandle:
        """The actor, on this (the driver's) node, using no CPU so it never waits for a free slot."""
        if self._actor is None:
            here = ray.get_runtime_context().get_node_id()
            remote = ray.remote(num_cpus=0, max_restarts=0)(RunTracker)
            strategy = NodeAffinitySchedulingStrategy(here, soft=False)
            # Ray's stubs type a remote class's .options().remote() as the class itself
            self._actor = cast(ray.actor.ActorHandle, remote.options(scheduling_strategy=strategy).remote())
        return self._actor

    def snapshot(self) -> dict:
        if self._actor is None:
            return {"stages": {}, "warnings": {}}
        return cast(dict, ray.get(self._actor.snapshot.remote()))

    def drain(self) -> tuple[dict, list[pa.Table]]:
        """The snapshot and the ledger rows workers handed in since the last drain (a table per batch)."""
        if self._actor is None:
            return {"stages": {}, "warnings": {}}, []
        return cast(tuple, ray.get(self._actor.drain.remote()))

    def stop(self) -> None:
        if self._actor is not None:
            ray.kill(self._actor)
            self._actor = None
