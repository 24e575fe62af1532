"""Alignment accuracy against known truth: how far predicted line boundaries are from the true ones.

The synthetic corpus records the exact time of every sung line, so an aligner run on it can be
scored in seconds. Lines are matched by index; a line the aligner could not place (``None``, or
times that are not finite numbers) counts as missing: it is never within tolerance and is left
out of the means, which therefore describe only the lines that were placed.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..pipeline.ledger import Ledger
from ..pipeline.storage import Storage

WITHIN_SECONDS = 0.5


@dataclass(frozen=True)
class AlignmentScore:
    lines: int
    mean_abs_boundary_error: float  # mean over placed lines of (|start error| + |end error|) / 2, seconds
    median_abs_boundary_error: float  # median over every start and end of the placed lines, seconds
    within_half_second: float  # fraction of all lines whose start AND end are within 0.5 s
    mean_start_offset: float  # mean signed (predicted - true) start error: reveals a constant shift
    missing: int  # lines with no usable prediction


def score_alignment(
    true_lines: Sequence[tuple[float, float]], predicted: Sequence[tuple[float, float] | None]
) -> AlignmentScore:
    """Score predicted ``(start, end)`` line times against the true ones, line by line.

    Means are NaN when no line was placed; ``within_half_second`` is NaN only for a song with no lines.
    """
    if len(true_lines) != len(predicted):
        raise ValueError(
            f"got {len(predicted)} predictions for {len(true_lines)} true lines: pass one per line, "
            "None for a line that was not aligned"
        )
    errors: list[tuple[float, float]] = []
    within = 0
    for (true_start, true_end), guess in zip(true_lines, predicted, strict=True):
        if guess is None or not all(math.isfinite(t) for t in guess):
            continue
        start_error, end_error = guess[0] - true_start, guess[1] - true_end
        errors.append((start_error, end_error))
        within += abs(start_error) <= WITHIN_SECONDS and abs(end_error) <= WITHIN_SECONDS
    placed = len(errors)
    return AlignmentScore(
        lines=len(true_lines),
        mean_abs_boundary_error=_mean([(abs(s) + abs(e)) / 2 for s, e in errors]),
        median_abs_boundary_error=statistics.median(abs(t) for pair in errors for t in pair) if errors else math.nan,
        within_half_second=within / len(true_lines) if true_lines else math.nan,
        mean_start_offset=_mean([s for s, _ in errors]),
        missing=len(true_lines) - placed,
    )


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def evaluate_root_alignment(root: str, truth_dir: Path) -> dict:
    """Score the latest alignment of every song of ``root`` that has truth timings in ``truth_dir``."""
    storage = Storage(root)
    latest, records = Ledger(storage).latest_records("align")
    if latest is None:
        raise ValueError(f"{root} has no align outcomes: run a job with [stages.align] first")
    true_all: list[tuple[float, float]] = []
    predicted_all: list[tuple[float, float] | None] = []
    songs = 0
    for record in records:
        truth_rel = (record.get("extra") or {}).get("truth_path")
        if not truth_rel or not (truth_dir / truth_rel).exists():
            continue
        truth = json.loads((truth_dir / truth_rel).read_text())["lines"]
        lines = json.loads(storage.read_bytes(record["alignment"]))["lines"]
        if len(lines) != len(truth):
            continue  # lyrics and truth disagree on lines: not comparable line by line
        songs += 1
        true_all += [(t["start"], t["end"]) for t in truth]
        predicted_all += [None if p["start"] is None else (p["start"], p["end"]) for p in lines]
    return {"run_id": latest, "songs": songs, **asdict(score_alignment(true_all, predicted_all))}
