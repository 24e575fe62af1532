"""The ``songcorpus`` command: wires the pipeline, the stages and the synthetic corpus together."""

from __future__ import annotations

import argparse
import logging
import sys

from .pipeline.jobfile import JobSpecError, load_job

log = logging.getLogger("songcorpus")


def _cmd_run(args: argparse.Namespace) -> int:
    from .pipeline.phase import StallError
    from .pipeline.report import format_summary_table
    from .pipeline.resources import ResourcePlanError
    from .pipeline.runner import run_job

    try:
        job, text = load_job(args.job, root=args.root)
    except JobSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.address:
        job = job.model_copy(update={"runtime": job.runtime.model_copy(update={"address": args.address})})
    try:
        result = run_job(job, text)
    except (ResourcePlanError, StallError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    for notice in result.report["notices"]:
        print(f"NOTE: {notice}")
    print(f"run {result.run_id}: {result.status} in {result.report['wall_seconds']:.1f} s")
    print(format_summary_table(result.report["stages"]))
    if not any(s["computed"] for s in result.report["stages"]):
        print("nothing recomputed: every item was already done with the same fingerprint")
    print(f"report: {result.report_path}")
    return 0 if result.status == "completed" else 1


def _cmd_status(args: argparse.Namespace) -> int:
    from .pipeline.status import status_text

    print(status_text(args.root, args.run))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .synth.cli import add_synth_parser

    parser = argparse.ArgumentParser(
        prog="songcorpus",
        description="Build lyrics-to-song training corpora (separate, align, segment, tokenize, shard) on Ray.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run or resume a job", description="Run or resume a job TOML file. "
                         "Work already done with the same fingerprint is reused, never recomputed.")
    run.add_argument("job", help="job spec, e.g. jobs/demo.toml")
    run.add_argument("--root", help="output root (local path or s3://...); overrides the job's root")
    run.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else embedded local Ray)")
    run.set_defaults(func=_cmd_run)

    status = sub.add_parser("status", help="per-stage ok / rejected / reasons / throughput of a run",
                            description="Print per-stage accounting of the latest run under ROOT (live while "
                            "a run is going).")
    status.add_argument("root", metavar="ROOT", help="output root of a job")
    status.add_argument("--run", help="run id (default: the latest)")
    status.set_defaults(func=_cmd_status)

    add_synth_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    return args.func(args)
