"""The ``songcorpus`` command: wires the pipeline, the stages and the synthetic corpus together."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .pipeline.errors import UserError
from .pipeline.jobfile import load_job
from .schemas.job import JobSpec
from .schemas.model_artifact import ModelArtifact

log = logging.getLogger("songcorpus")


def _cmd_run(args: argparse.Namespace) -> int:
    from .pipeline.report import format_sections, format_summary_table
    from .pipeline.runner import run_job

    job, text = _load(args)
    result = run_job(job, text, verbose=args.verbose)
    report = result.report
    for notice in report["notices"]:
        print(f"NOTE: {notice}")
    print(f"run {result.run_id}: {result.status} in {report['wall_seconds']:.1f} s")
    print(format_summary_table(report["stages"]))
    if report["sections"]:
        print(format_sections(report["sections"]), end="")
    if report["warnings"]:
        print(f"library warnings: {sum(report['warnings'].values())} (counted in the report)")
    if not any(s["computed"] for s in report["stages"]):
        print("nothing recomputed: every item was already done with the same fingerprint")
    print(f"report: {result.report_path}")
    return 0 if result.status == "completed" else 1


def _load(args: argparse.Namespace) -> tuple[JobSpec, str]:
    """The job of ``args.job`` with ``--root`` and ``--address`` applied."""
    job, text = load_job(args.job, root=getattr(args, "root", None))
    if args.address:
        job = job.model_copy(update={"runtime": job.runtime.model_copy(update={"address": args.address})})
    return job, text


def _cmd_train(args: argparse.Namespace) -> int:
    from .pipeline.runtime import ray_session
    from .training.dslm import train_dslm
    from .training.ldm import train_ldm, train_vae
    from .training.tokenizer import train_tokenizer

    job, _ = _load(args)
    trainers: dict[str, Callable[[str, Any, str], ModelArtifact]] = {
        "tokenizer": train_tokenizer, "dslm": train_dslm, "vae": train_vae, "ldm": train_ldm}
    wanted = [name for name in trainers if getattr(job.train, name) is not None and name in (args.only or trainers)]
    if not wanted:
        print(f"error: {args.job} has no [train.{'|'.join(args.only or trainers)}] section", file=sys.stderr)
        return 2
    with ray_session(job.runtime.address, job.runtime.num_cpus):
        for name in wanted:
            artifact = trainers[name](job.root, getattr(job.train, name), job.name)
            print(f"{name}/{artifact.id}  {artifact.summary}")
            print(f"  folder: {job.root}/models/{name}/{artifact.id}  (songcorpus models show {name}/{artifact.id} "
                  f"--root {job.root})")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from .pipeline.validate import validate_text

    job, _ = _load(args)
    print(validate_text(job))
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .pipeline.status import status_text

    print(status_text(args.root, args.run))
    return 0


def _evaluate(args: argparse.Namespace, evaluate: Callable[[str, Path], dict], rel: str) -> dict | None:
    """Run an evaluator against ``--truth`` (default ROOT/synth), save its result under ROOT, or say why not."""
    import json

    from .pipeline.storage import Storage

    storage = Storage(args.root)
    try:
        result = evaluate(args.root, args.truth or Path(storage.full("synth")))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    storage.write_bytes(rel, json.dumps(result, indent=2).encode())
    return result


def _cmd_eval_separation(args: argparse.Namespace) -> int:
    from .stages.separation_eval import evaluate_root

    result = _evaluate(args, evaluate_root, "eval/separation.json")
    if result is None:
        return 2
    nan = float("nan")
    print(f"{'song':<24}{'vocals SDR':>12}{'(mixture)':>11}{'accomp SDR':>12}{'(mixture)':>11}")
    for s in result["per_song"]:
        print(f"{s['song_id']:<24}{s['vocals_sdr']:>12.2f}{s['vocals_baseline']:>11.2f}"
              f"{s['accomp_sdr']:>12.2f}{s['accomp_baseline']:>11.2f}")
    for how in ("mean", "median"):
        values = [result[f"{how}_{k}"] for k in ("vocals_sdr", "vocals_baseline", "accomp_sdr", "accomp_baseline")]
        print(f"{how:<24}" + "".join(f"{v if v is not None else nan:>{w}.2f}" for v, w in zip(values, (12, 11, 12, 11),
                                                                                                strict=True)))
    print(f"({result['songs']} songs, {len(result['skipped_without_truth'])} without truth; the mixture columns score "
          "the unseparated mixture as the estimate; saved to eval/separation.json)")
    return 0


def _cmd_eval_alignment(args: argparse.Namespace) -> int:
    from .stages.alignment_eval import evaluate_root_alignment

    result = _evaluate(args, evaluate_root_alignment, "eval/alignment.json")
    if result is None:
        return 2
    print(f"songs scored: {result['songs']}, lines: {result['lines']} ({result['missing']} not aligned)")
    print(f"line-boundary error: median {result['median_abs_boundary_error']:.3f} s, "
          f"mean {result['mean_abs_boundary_error']:.3f} s")
    print(f"lines within 0.5 s: {result['within_half_second']:.1%}")
    print(f"mean start offset (predicted - true): {result['mean_start_offset']:+.3f} s  (saved to eval/alignment.json)")
    return 0


def _cmd_plan_clips(args: argparse.Namespace) -> int:
    from .pipeline.status import sections_text

    print(sections_text(args.root, ("segment", "filter")))
    return 0


def _cmd_versions(args: argparse.Namespace) -> int:
    from .pipeline import versions
    from .pipeline.storage import Storage

    storage = Storage(args.root)
    try:
        if args.action == "list":
            rows = versions.list_versions(storage)
            if not rows:
                print(f"no dataset versions under {args.root}")
            for m in rows:
                hours = sum(m["splits"]["seconds"].values()) / 3600
                print(f"{m['id']}  {m['dataset']:<14} {sum(m['splits']['samples'].values()):>8} clips "
                      f"{hours:8.3f} h  {len(m['shards']):>4} shards  parent {m['parent'] or '-'}")
        elif args.action == "show":
            m = versions.load_manifest(storage, args.version)
            print(storage.read_bytes(f"{versions.version_dir(m['id'])}/datacard.md").decode())
            for shard in m["shards"]:
                print(f"{shard['name']}  {shard['samples']:>6} samples  {shard['seconds']:>9.1f} s  "
                      f"{shard['bytes']:>12} B  sha256 {shard['sha256'][:16]}…")
        elif args.action == "diff":
            d = versions.diff(storage, args.version, args.other)
            for key, value in d.items():
                shown = value if isinstance(value, str) else f"{len(value)}  {' '.join(value[:8])}"
                print(f"{key:<16} {shown}")
        else:
            problems = versions.verify(storage, args.version)
            for problem in problems:
                print(f"FAIL {problem}")
            print("verified: every shard matches the manifest" if not problems else f"{len(problems)} problem(s)")
            return 1 if problems else 0
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .decode_cli import add_decode_parser
    from .evaluate_cli import add_evaluate_parser
    from .models_cli import add_models_parser
    from .pipeline.references import MIN_PREFIX
    from .synth.cli import add_synth_parser

    parser = argparse.ArgumentParser(
        prog="songcorpus",
        description="Build lyrics-to-song training corpora (separate, align, segment, tokenize, shard) on Ray.",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and every library's output on the console")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run or resume a job", description="Run or resume a job TOML file. "
                         "Work already done with the same fingerprint is reused, never recomputed.")
    run.add_argument("job", help="job spec, e.g. jobs/demo.toml")
    run.add_argument("--root", help="output root (local path or s3://...); overrides the job's root")
    run.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else embedded local Ray)")
    run.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                     help="show Ray's and the libraries' own output on the console too")
    run.set_defaults(func=_cmd_run)

    train = sub.add_parser("train", help="train what the job's [train.*] sections name (tokenizer, dslm, vae, ldm)",
                           description="Train the models a job's [train.*] sections name, in the order tokenizer, "
                           "dslm, vae, ldm, from its dataset version, on Ray Train (embedded or --address), and "
                           "publish each as a model artifact under the job's root. A killed run started again resumes "
                           "from its last checkpoint. The DSLM and the LDM read tokens: train the tokenizer, run the "
                           "job again (it tokenizes and publishes a new version), then train the rest "
                           "(--only dslm --only vae --only ldm).")
    train.add_argument("job", help="job spec with [train.*] sections, e.g. jobs/demo.toml")
    train.add_argument("--root", help="output root; overrides the job's root")
    train.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else embedded local Ray)")
    train.add_argument("--only", action="append", choices=("tokenizer", "dslm", "vae", "ldm"),
                       help="train only this section (repeatable)")
    train.set_defaults(func=_cmd_train)

    validate = sub.add_parser(
        "validate", help="check a job spec and show the stages and resource plan, without running it",
        description="Validate JOB.toml (every problem with its key path), then print the enabled stages, their "
        "phases and the resources each stage's workers would get on the cluster (--address, RAY_ADDRESS, or "
        "this machine). Starts no work.")
    validate.add_argument("job", help="job spec, e.g. jobs/demo.toml")
    validate.add_argument("--address", help="Ray cluster to fit the plan to (default: this machine)")
    validate.set_defaults(func=_cmd_validate)

    status = sub.add_parser("status", help="per-stage ok / rejected / reasons / throughput of a run",
                            description="Print per-stage accounting of the latest run under ROOT (live while "
                            "a run is going).")
    status.add_argument("root", metavar="ROOT", help="output root of a job")
    status.add_argument("--run", help="run id (default: the latest)")
    status.set_defaults(func=_cmd_status)

    add_synth_parser(sub)

    ev = sub.add_parser(
        "eval-separation",
        help="SDR of separated stems against known truth stems",
        description="Score the latest separate run under ROOT against the true stems of a synthetic corpus "
        "(manifest column truth_path). Prints SDR (dB) of vocals and accompaniment per song and the mean.",
    )
    ev.add_argument("root", metavar="ROOT", help="output root of a job that ran separate")
    ev.add_argument("--truth", type=Path, help="folder of the synthetic corpus (default: ROOT/synth)")
    ev.set_defaults(func=_cmd_eval_separation)

    ea = sub.add_parser(
        "eval-alignment",
        help="line-boundary error of the alignment against known truth",
        description="Score the latest align run under ROOT against the true line times of a synthetic corpus: "
        "mean absolute line-boundary error, share of lines within 0.5 s, and the mean signed start offset.",
    )
    ea.add_argument("root", metavar="ROOT", help="output root of a job that ran align")
    ea.add_argument("--truth", type=Path, help="folder of the synthetic corpus (default: ROOT/synth)")
    ea.set_defaults(func=_cmd_eval_alignment)

    pc_ = sub.add_parser(
        "plan-clips",
        help="clip and hour counts, and the loss at each rule",
        description="From the latest run under ROOT (run a job that ends at segment or filter to plan before "
        "spending GPU time on tokens): songs and clips kept, hours, and what each rule removed.",
    )
    pc_.add_argument("root", metavar="ROOT", help="output root of a job that ran segment (and filter)")
    pc_.set_defaults(func=_cmd_plan_clips)

    ver = sub.add_parser("versions", help="dataset versions: list, show, diff, verify",
                         description="Immutable dataset versions published by the shard stage.")
    ver_sub = ver.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text, refs in (
        ("list", "every version under ROOT, oldest first", 0),
        ("show", "a version's data card and shards", 1),
        ("diff", "songs, clips and stage fingerprints that differ between two versions", 2),
        ("verify", "re-hash every shard and check it against the manifest (exit 1 on any mismatch)", 1),
    ):
        p = ver_sub.add_parser(action, help=text, description=text)
        if refs >= 1:
            p.add_argument("version", help=f"version id (or a unique prefix of {MIN_PREFIX}+ characters)")
        if refs == 2:
            p.add_argument("other", help="the version to compare with")
        p.add_argument("--root", required=True, help="output root of the job")
        p.set_defaults(func=_cmd_versions)

    add_models_parser(sub)
    add_evaluate_parser(sub)
    add_decode_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .pipeline.console import configure_console

    parser = build_parser()
    args = parser.parse_args(argv)
    configure_console(args.verbose)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, not in the interpreter's exit flush
        return code
    except BrokenPipeError:  # the reader went away (`songcorpus validate JOB | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit flush does not fail
        return 1
    except UserError as exc:  # something the user can fix: the message says what; a bug keeps its traceback
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
