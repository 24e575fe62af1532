"""The human data card of a dataset version (Markdown): what is in it, how it was made, what was dropped."""

from __future__ import annotations

import numpy as np


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def render_datacard(content: dict, clip_seconds: list[float], notices: list[str]) -> str:
    """Markdown for ``versions/<id>/datacard.md``; ``{version_id}`` is filled in on publishing."""
    splits = content["splits"]
    lines = [f"# {content['dataset']} — dataset version `{{version_id}}`", ""]
    lines += [f"> **Warning:** {n}" for n in notices] + ([""] if notices else [])
    total = sum(splits["samples"].values())
    lines += [
        "## Size",
        "",
        (f"{total} clips, {_hours(sum(splits['seconds'].values()))}, in {len(content['shards'])} shards "
        f"({sum(s['bytes'] for s in content['shards']) / 1e6:.1f} MB)."),
        "",
        "| split | fraction of groups | clips | hours |",
        "|---|---|---|---|",
    ]
    for name, fraction in splits["fractions"].items():
        lines.append(f"| {name} | {fraction:g} | {splits['samples'].get(name, 0)} | "
                     f"{splits['seconds'].get(name, 0) / 3600:.3f} |")
    lines += ["", f"Splits are assigned by a stable hash of the {splits['key']}: adding songs never moves one.", ""]
    lines += ["## Languages", "", "| language | clips |", "|---|---|"]
    lines += [f"| {lang} | {n} |" for lang, n in sorted(content["languages"].items())]
    lines += ["", "## Clip durations", "", "| seconds | clips |", "|---|---|"]
    counts, edges = np.histogram(np.asarray(clip_seconds, dtype=float), bins=np.arange(0, 35, 5.0))
    lines += [f"| {edges[i]:.0f}–{edges[i + 1]:.0f} | {int(c)} |" for i, c in enumerate(counts)]
    lines += ["", "## What was dropped and why", ""]
    if content["rejects"]:
        lines += ["| stage | reason | songs |", "|---|---|---|"]
        lines += [f"| {stage} | {reason} | {n} |" for stage, reasons in content["rejects"].items()
                  for reason, n in reasons.items()]
    else:
        lines.append("Nothing was rejected.")
    stages = content["job"].get("stages") or {}
    lines += ["", "## How it was made", ""]
    if stages.get("separate"):
        lines.append(f"- separation: Demucs `{stages['separate'].get('model')}`, accompaniment = "
                     f"{stages['separate'].get('accompaniment')}")
    if stages.get("align"):
        models = stages["align"].get("models") or "WhisperX defaults"
        lines.append(f"- alignment: WhisperX, models {models}")
    if stages.get("segment"):
        lines.append(f"- clips: at most {stages['segment'].get('max_seconds')} s, never splitting a lyric line")
    lines += [f"- stage `{name}`: identity `{ident}`" for name, ident in content["stages"].items()]
    lines += ["", "Verify with `songcorpus versions verify {version_id} --root ROOT`.", ""]
    return "\n".join(lines)
