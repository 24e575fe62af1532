"""The alignment evaluator on the true line times of a synthetic song, exact, shifted and partial."""

from __future__ import annotations

import json
import math

import pytest

from songcorpus.stages.alignment_eval import score_alignment
from songcorpus.synth.corpus import make_corpus


@pytest.fixture(scope="module")
def true_lines(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[float, float]]:
    out = tmp_path_factory.mktemp("corpus")
    make_corpus(out, 1, seed=3, min_seconds=20, max_seconds=25, workers=1)
    (truth_path,) = (out / "truth").glob("*.json")
    lines = [(line["start"], line["end"]) for line in json.loads(truth_path.read_text())["lines"]]
    assert len(lines) >= 3
    return lines


def test_true_timings_score_perfectly(true_lines: list[tuple[float, float]]) -> None:
    score = score_alignment(true_lines, list(true_lines))
    assert score.lines == len(true_lines) and score.missing == 0
    assert score.mean_abs_boundary_error == 0.0 and score.mean_start_offset == 0.0
    assert score.within_half_second == 1.0


def test_a_constant_shift_shows_as_offset_and_error(true_lines: list[tuple[float, float]]) -> None:
    score = score_alignment(true_lines, [(s + 0.3, e + 0.3) for s, e in true_lines])
    assert math.isclose(score.mean_start_offset, 0.3, abs_tol=1e-9)
    assert math.isclose(score.mean_abs_boundary_error, 0.3, abs_tol=1e-9)
    assert score.within_half_second == 1.0
    late = score_alignment(true_lines, [(s - 0.6, e) for s, e in true_lines])
    assert math.isclose(late.mean_start_offset, -0.6, abs_tol=1e-9)
    assert math.isclose(late.mean_abs_boundary_error, 0.3, abs_tol=1e-9)
    assert late.within_half_second == 0.0
    # half the boundaries (the ends) are exact, half 0.6 s off: the median sits between them
    assert math.isclose(late.median_abs_boundary_error, 0.3, abs_tol=1e-9)
    assert math.isclose(score.median_abs_boundary_error, 0.3, abs_tol=1e-9)


def test_missing_lines_are_counted_and_left_out_of_the_means(true_lines: list[tuple[float, float]]) -> None:
    predicted: list[tuple[float, float] | None] = [(s + 0.2, e + 0.2) for s, e in true_lines]
    predicted[0] = None
    predicted[-1] = (math.nan, math.nan)
    score = score_alignment(true_lines, predicted)
    assert score.missing == 2 and score.lines == len(true_lines)
    assert math.isclose(score.mean_start_offset, 0.2, abs_tol=1e-9)
    assert math.isclose(score.within_half_second, (len(true_lines) - 2) / len(true_lines))


def test_nothing_aligned_and_nothing_to_align() -> None:
    none = score_alignment([(1.0, 2.0), (3.0, 4.0)], [None, None])
    assert none.missing == 2 and none.within_half_second == 0.0 and math.isnan(none.mean_abs_boundary_error)
    empty = score_alignment([], [])
    assert empty.lines == 0 and math.isnan(empty.within_half_second)


def test_one_prediction_per_line_is_required() -> None:
    with pytest.raises(ValueError, match="one per line"):
        score_alignment([(1.0, 2.0)], [])
