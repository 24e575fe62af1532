"""The engine's own cost at scale: N metadata-only items through two no-op stages, first run and rerun.

For each N (a fresh process each, so peak memory is the driver's own):
- first run: wall time per item, against a bare Ray Data pipeline of the same no-op actors over the
  same rows in the same process (the reference; ratio = engine / bare);
- rerun with nothing to do: driver time per reused item beyond Ray start-up (the issue's goal:
  <= 0.1 ms at 100k), and whether any actor started (it must not);
- the ledger files per stage after both runs, the cost of one progress poll, and the driver's peak RSS.

    .venv/bin/python bench/bench_engine.py                 # N = 10k and 100k
    .venv/bin/python bench/bench_engine.py --items 20000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import ray

from songcorpus.pipeline.phase import InputRow
from songcorpus.pipeline.runner import RunSession, new_run_id
from songcorpus.pipeline.runtime import start_ray
from songcorpus.pipeline.stage import Result, Stage
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.base import Resources, StageConfig

BATCH = 500


class NoOpConfig(StageConfig):
    resources: Resources = Resources(num_cpus=0.5, batch_size=BATCH, min_workers=1, max_workers=2)


class NoOpA(Stage[NoOpConfig]):
    name, version = "noop_a", 1

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        return Result(record, audio_seconds=1.0)


class NoOpB(NoOpA):
    name = "noop_b"


class _Bare:
    """The reference: the same per-batch Arrow round trip with no engine around it."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist(batch.to_pylist(), schema=batch.schema)


def bare_seconds(rows: list[InputRow]) -> float:
    table = pa.table({"item_id": [r.item_id for r in rows], "record": [r.record for r in rows]})
    started = time.perf_counter()
    ds: ray.data.Dataset = ray.data.from_arrow([table.slice(i, BATCH) for i in range(0, table.num_rows, BATCH)])
    for _ in range(2):
        ds = ds.map_batches(_Bare, batch_size=BATCH, batch_format="pyarrow", num_cpus=0.5,
                            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=2))
    for _ in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        pass
    return time.perf_counter() - started


def measure(n: int) -> dict:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = start_ray(num_cpus=2)
    rows = [InputRow(f"item{i:07d}", f"in{i}", json.dumps({"n": i, "title": f"song {i}", "pad": "x" * 200}))
            for i in range(n)]
    stages = [(NoOpA, NoOpConfig()), (NoOpB, NoOpConfig())]
    with tempfile.TemporaryDirectory() as root:
        storage = Storage(root)
        times, snapshots = [], []
        for _ in range(2):
            started = time.perf_counter()
            with RunSession(storage, cluster, new_run_id()) as session:
                session.phase(stages, rows)
            times.append(time.perf_counter() - started)
            snapshots.append(session.tracker_snapshot)
        files = {s: len(storage.list_files(f"ledger/{s}", ".parquet")) for s, _ in (("noop_a", 0), ("noop_b", 0))}
        with RunSession(storage, cluster, new_run_id()) as session:
            polls = 50
            started = time.perf_counter()
            for _ in range(polls):
                ray.get(session.run.tracker.actor().snapshot.remote())
            poll_ms = (time.perf_counter() - started) / polls * 1000
    bare = bare_seconds(rows)
    return {
        "items": n, "first_s": times[0], "rerun_s": times[1], "bare_s": bare,
        "rerun_workers_saw_batches": bool(snapshots[1]["stages"]), "ledger_files": files, "poll_ms": poll_ms,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one N in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    print(f"{'items':>8}{'first ms/item':>15}{'bare ms/item':>14}{'ratio':>7}{'rerun ms/item':>15}"
          f"{'actors on rerun':>17}{'ledger files':>14}{'poll ms':>9}{'peak RSS MB':>13}")
    for n in args.items:
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{n:>8}{r['first_s'] / n * 1000:>15.3f}{r['bare_s'] / n * 1000:>14.3f}"
              f"{r['first_s'] / r['bare_s']:>7.2f}{r['rerun_s'] / n * 1000:>15.4f}"
              f"{'yes' if r['rerun_workers_saw_batches'] else 'none':>17}"
              f"{max(r['ledger_files'].values()):>14}{r['poll_ms']:>9.2f}{r['peak_rss_mb']:>13.0f}")


if __name__ == "__main__":
    main()
