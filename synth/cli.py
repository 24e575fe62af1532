"""``songcorpus synth``: the command-line face of ``make_corpus``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from songcorpus.synth.accompaniment import MissingToolError
from songcorpus.synth.corpus import DEFAULT_FORMATS, MANIFEST_COLUMNS, default_workers, make_corpus
from songcorpus.synth.lyrics_text import SUPPORTED_LANGUAGES


def _csv_list(value: str) -> list[str]:
    items = [item.strip().lower() for item in value.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one value, comma-separated")
    return items


def add_synth_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``synth`` on ``subparsers``; the parser's default ``func`` is ``run_synth``."""
    parser = subparsers.add_parser(
        "synth",
        help="write synthetic songs with known truth (stems, lyrics, word timings)",
        description=(
            "Generate synthetic songs: espeak-ng vocals sung over a FluidSynth-rendered MIDI backing, "
            "with the true vocal and accompaniment stems, plain and LRC lyrics, per-word timings "
            f"(truth/*.json) and a manifest (manifest.parquet and .csv, columns: {', '.join(MANIFEST_COLUMNS)}). "
            "The same --seed gives byte-identical files."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--songs", type=int, required=True, metavar="N", help="number of songs to generate")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output directory (created if missing)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random seed; song i depends only on (seed, i)"
    )
    parser.add_argument(
        "--languages",
        type=_csv_list,
        default=["en"],
        metavar="LIST",
        help=f"comma-separated lyric languages, assigned to artists in turn; any of {','.join(SUPPORTED_LANGUAGES)}",
    )
    parser.add_argument(
        "--formats",
        type=_csv_list,
        default=list(DEFAULT_FORMATS),
        metavar="LIST",
        help="comma-separated mixture formats, rotated across songs",
    )
    parser.add_argument("--min-seconds", type=float, default=25.0, metavar="SEC", help="shortest song length")
    parser.add_argument("--max-seconds", type=float, default=50.0, metavar="SEC", help="longest song length")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        metavar="N",
        help="parallel worker processes (output does not depend on it)",
    )
    parser.set_defaults(func=run_synth)
    return parser


def run_synth(args: argparse.Namespace) -> int:
    """Run ``make_corpus`` from parsed arguments; 0 on success, 2 on bad input or a missing tool."""
    try:
        manifest = make_corpus(
            args.out,
            args.songs,
            args.seed,
            languages=args.languages,
            formats=args.formats,
            min_seconds=args.min_seconds,
            max_seconds=args.max_seconds,
            workers=args.workers,
        )
    except (ValueError, MissingToolError, ImportError) as exc:
        print(f"songcorpus synth: error: {exc}", file=sys.stderr)
        return 2
    print(manifest)
    return 0
