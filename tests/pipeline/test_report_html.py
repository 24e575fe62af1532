"""Tests for the self-contained HTML run report."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from songcorpus.pipeline.report_html import render_report_html

HOSTILE = "<script>alert(1)</script>"


def _report() -> dict[str, Any]:
    return {
        "job": "demo",
        "run_id": "20261122T020000Z-ab12cd",
        "status": "completed",
        "started_at": "2026-11-22T02:00:00Z",
        "finished_at": "2026-11-22T02:03:10Z",
        "wall_seconds": 190.2,
        "notices": ["This run used smoke-test models with random weights: outputs are for testing only"],
        "resource_plan": [
            {
                "stage": "standardize",
                "num_cpus": 0.5,
                "num_gpus": 0.0,
                "min_actors": 1,
                "max_actors": 2,
                "note": "scaled from 1.0 CPU to fit 2 CPUs",
            },
            {
                "stage": "separate",
                "num_cpus": 1.0,
                "num_gpus": 0.5,
                "min_actors": 1,
                "max_actors": 2,
                "note": "",
            },
        ],
        "stages": [
            {
                "name": "ingest",
                "version": 1,
                "input": 12,
                "ok": 9,
                "rejected": 3,
                "reused": 0,
                "computed": 12,
                "reasons": {"missing_file": 1, "duplicate_audio": 2},
                "reason_examples": {
                    "missing_file": "audio file not found: audio/x.wav",
                    "duplicate_audio": "same audio as song-000001 (audio/a.wav)",
                },
                "wall_seconds": 4.1,
                "busy_seconds": 3.0,
                "audio_seconds": 400.5,
                "items_per_second": 2.9,
                "audio_seconds_per_second": 97.6,
            },
            {
                "name": "standardize",
                "version": 2,
                "input": 9,
                "ok": 8,
                "rejected": 1,
                "reused": 4,
                "computed": 5,
                "reasons": {"too_short": 1},
                "reason_examples": {"too_short": "duration 3.2 s < min 10 s"},
                "wall_seconds": 12.0,
                "busy_seconds": 20.5,
                "audio_seconds": 350.0,
                "items_per_second": 0.75,
                "audio_seconds_per_second": 29.2,
            },
            {
                "name": "separate",
                "version": 1,
                "input": 8,
                "ok": 8,
                "rejected": 0,
                "reused": 0,
                "computed": 8,
                "reasons": {},
                "reason_examples": {},
                "wall_seconds": 120.0,
                "busy_seconds": 95.0,
                "audio_seconds": 350.0,
                "items_per_second": 0.067,
                "audio_seconds_per_second": 0.29,
            },
        ],
        "durations": {"edges": [0, 10, 20, 30], "counts": [1, 5, 3]},
    }


def _empty_report() -> dict[str, Any]:
    report = _report()
    report.update(
        notices=[],
        stages=[],
        resource_plan=[],
        durations={"edges": [], "counts": []},
        status="failed",
        finished_at=None,
    )
    return report


def test_realistic_report_renders_all_sections() -> None:
    page = render_report_html(_report())
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    for text in (
        "demo",
        "20261122T020000Z-ab12cd",
        "completed",
        "ingest",
        "standardize",
        "separate",
        "duplicate_audio",
        "same audio as song-000001 (audio/a.wav)",
        "scaled from 1.0 CPU to fit 2 CPUs",
        "Accounting closed",
        "Where the time went",
        "Throughput",
        "Song durations",
        "Rejects by reason",
    ):
        assert text in page, text
    assert page.count("<svg") == 4  # durations, rejects, throughput, time
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert "(log scale)" in page  # throughput spans 97.6 / 0.29 > 100x


def test_no_external_references() -> None:
    page = render_report_html(_report())
    allowed = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    urls = set(re.findall(r"https?://[^\s\"'<>)]*", page))
    assert urls <= allowed, urls - allowed
    lowered = page.lower()
    assert "<script" not in lowered
    assert "<link" not in lowered
    assert "@import" not in lowered
    assert "src=" not in lowered


def test_svg_ids_are_unique_across_plots() -> None:
    page = render_report_html(_report())
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_notices_banner_comes_before_header() -> None:
    page = render_report_html(_report())
    banner = page.index('class="banner warn"')
    assert banner < page.index("<header")
    assert banner < page.index("smoke-test models with random weights") < page.index("<header")


def test_no_notices_gives_neutral_banner() -> None:
    report = _report()
    report["notices"] = []
    page = render_report_html(report)
    assert 'class="banner warn"' not in page
    assert "No notices" in page


def test_hostile_strings_are_escaped() -> None:
    report = _report()
    stage = report["stages"][0]
    stage["reasons"][HOSTILE] = 2
    stage["reason_examples"][HOSTILE] = f'bad "quote" & {HOSTILE}'
    report["notices"].append(HOSTILE)
    report["job"] = HOSTILE
    report["resource_plan"][0]["note"] = HOSTILE
    stage["name"] = "stage $with$ dollars"  # must not trip matplotlib mathtext
    page = render_report_html(report)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "stage $with$ dollars" in page


def test_unclosed_accounting_is_flagged() -> None:
    report = _report()
    report["stages"][1]["ok"] = 5  # 9 != 5 + 1
    page = render_report_html(report)
    assert "Accounting NOT closed" in page
    assert "Accounting closed" not in page
    assert '<tr class="bad">' in page and page.count('<tr class="bad">') == 1
    assert "input 9 ≠ ok 5 + rejected 1" in page
    assert "not closed" in page


def test_closed_accounting_has_no_failures() -> None:
    page = render_report_html(_report())
    assert "Accounting closed" in page
    assert '<tr class="bad">' not in page


def test_empty_report_renders_empty_states() -> None:
    page = render_report_html(_empty_report())
    assert "<svg" not in page
    for text in (
        "No stages ran.",
        "Song durations: no data.",
        "nothing was rejected",
        "no audio was processed",
        "no timings recorded",
        "No items were rejected.",
        "No resource plan recorded.",
        "failed",
    ):
        assert text in page, text


def test_zero_counts_and_zero_throughput_are_empty_states() -> None:
    report = _report()
    report["durations"] = {"edges": [0, 10, 20], "counts": [0, 0]}
    for stage in report["stages"]:
        stage.update(reasons={}, audio_seconds_per_second=0.0, wall_seconds=0.0, busy_seconds=0.0)
    page = render_report_html(report)
    assert "<svg" not in page
    assert "Song durations: no data." in page


@pytest.mark.parametrize("make", [_report, _empty_report])
def test_render_is_deterministic(make: Any) -> None:
    report = make()
    first = render_report_html(copy.deepcopy(report))
    second = render_report_html(copy.deepcopy(report))
    assert first == second
    assert first.encode() == second.encode()


def test_input_is_not_mutated() -> None:
    report = _report()
    before = copy.deepcopy(report)
    render_report_html(report)
    assert report == before


def test_non_dict_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"report\.json dict"):
        render_report_html([])  # type: ignore[arg-type]
