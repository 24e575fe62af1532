"""``songcorpus models train-small``: the offline separator and aligner, trained and judged on synthetic songs.

1. Generate a training corpus (its own seed) and train the separator (HTDemucs classes) and the CTC
   aligner (``Wav2Vec2ForCTC``) on it, each in its library's own format.
2. Judge both on held-out songs (another seed: never seen in training) by running the real stages
   (ingest → standardize → separate → align) twice: with the trained aligner and, for comparison,
   the random smoke aligner on the same separated vocals. SDR per stem is printed next to the
   mixture-as-estimate baseline, the line-boundary error next to the random model's.
3. Publish each as a model artifact under ``ROOT/models/<kind>/<id>/`` with its recipe, lineage and
   held-out metrics; the summary line says what the model is in every report that uses it.

The repository ships the result in ``assets/`` (``songcorpus models train-small --root assets``
reproduces it), so the demo and the tests need no training time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .pipeline.jobfile import parse_job
from .pipeline.runner import run_job
from .pipeline.storage import Storage
from .schemas.model_artifact import ModelArtifact
from .stages.alignment_eval import evaluate_root_alignment
from .stages.separation_eval import evaluate_root
from .synth.corpus import make_corpus
from .training.artifacts import publish_model
from .training.small_aligner import AlignerRecipe, train_aligner
from .training.small_separator import SEPARATOR_NAME, SeparatorRecipe, train_separator

log = logging.getLogger(__name__)

ALIGNER_FOLDER = "wav2vec2"  # inside the aligner artifact: the Hugging Face model folder
SEPARATOR_FOLDER = "demucs"  # inside the separator artifact: the Demucs repository


@dataclass(frozen=True)
class CorpusSpec:
    """A synthetic corpus; a different seed gives different songs, artists and lyrics."""

    seed: int
    songs: int
    languages: tuple[str, ...] = ("en", "es", "de")
    min_seconds: float = 20.0
    max_seconds: float = 40.0


#: training songs, and held-out songs that training never sees (the demo's corpus is seed 0)
TRAIN_CORPUS = CorpusSpec(seed=1, songs=24)
HELDOUT_CORPUS = CorpusSpec(seed=2, songs=6)


@dataclass(frozen=True)
class SmallModels:
    separator: ModelArtifact
    aligner: ModelArtifact


def _corpus(spec: CorpusSpec, folder: Path) -> Path:
    """Generate ``spec`` into ``folder`` unless the same corpus is already there (it is deterministic)."""
    marker = folder / "corpus-spec.json"
    wanted = json.dumps(dataclasses.asdict(spec), sort_keys=True)
    if not (marker.exists() and marker.read_text() == wanted):
        make_corpus(folder, spec.songs, seed=spec.seed, languages=spec.languages, min_seconds=spec.min_seconds,
                    max_seconds=spec.max_seconds, formats=("flac",))
        marker.write_text(wanted)
    return folder


def _heldout_job(root: Path, separator: Path, aligner: str) -> str:
    spec = HELDOUT_CORPUS
    return f"""
name = "small-models-heldout"
root = {json.dumps(str(root))}
[input.synth]
songs = {spec.songs}
seed = {spec.seed}
min_seconds = {spec.min_seconds}
max_seconds = {spec.max_seconds}
languages = {json.dumps(list(spec.languages))}
[stages.ingest]
[stages.standardize]
[stages.separate]
model = "{SEPARATOR_NAME}"
repo = {json.dumps(str(separator))}
[stages.align]
{aligner}
"""


def judge_on_heldout(work: Path, separator_repo: Path, aligner_dir: Path) -> dict:
    """Held-out SDR (vs the mixture) and line-boundary error (vs the random aligner), through the real stages."""
    root = work / "heldout"
    results: dict = {}
    models = ", ".join(f'{lang} = {json.dumps(str(aligner_dir))}' for lang in HELDOUT_CORPUS.languages)
    for name, aligner in (("random", f'smoke_dir = {json.dumps(str(work / "smoke"))}'),
                          ("trained", f"models = {{ {models} }}")):
        text = _heldout_job(root, separator_repo, aligner)
        result = run_job(parse_job(text, source=f"held-out job ({name} aligner)"), text)
        if result.status != "completed":
            raise RuntimeError(f"the held-out job with the {name} aligner {result.status}: see {result.report_path}")
        results[f"alignment_{name}"] = evaluate_root_alignment(str(root), root / "synth")
    results["separation"] = evaluate_root(str(root), root / "synth")
    return results


def _metrics(judged: dict) -> tuple[dict, dict]:
    sep, trained, random = judged["separation"], judged["alignment_trained"], judged["alignment_random"]
    keep = ("songs", "lines", "median_abs_boundary_error", "mean_abs_boundary_error", "within_half_second", "missing")
    separator = {k: v for k, v in sep.items() if k.startswith(("median_", "mean_"))} | {"heldout_songs": sep["songs"]}
    aligner = {f"{k}": trained[k] for k in keep} | {f"random_{k}": random[k] for k in keep if k not in ("songs",)}
    return separator, aligner


def train_small_models(root: Path, separator_recipe: SeparatorRecipe, aligner_recipe: AlignerRecipe) -> SmallModels:
    """Train, judge and publish both models under ``root``; corpora and runs stay in ``root/work``."""
    work = root / "work" / "small-models"
    train = _corpus(TRAIN_CORPUS, work / f"corpus-seed{TRAIN_CORPUS.seed}")
    staging = work / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    log.info("training the separator (%s)", separator_recipe)
    sep_stats = train_separator(separator_recipe, train, staging / "separator" / SEPARATOR_FOLDER)
    log.info("separator: %s; training the aligner (%s)", sep_stats, aligner_recipe)
    align_stats = train_aligner(aligner_recipe, train, staging / "aligner" / ALIGNER_FOLDER)
    log.info("aligner: %s; judging both on held-out songs", align_stats)
    judged = judge_on_heldout(work, staging / "separator" / SEPARATOR_FOLDER, staging / "aligner" / ALIGNER_FOLDER)
    sep_metrics, align_metrics = _metrics(judged)
    lineage = {"train_corpus": dataclasses.asdict(TRAIN_CORPUS), "heldout_corpus": dataclasses.asdict(HELDOUT_CORPUS),
               "songcorpus": __version__}
    storage = Storage(str(root))
    separator = publish_model(
        storage, "separator", staging / "separator", name=SEPARATOR_NAME,
        summary=(f"small HTDemucs ({sep_stats['parameters']:,} parameters) trained on {TRAIN_CORPUS.songs} synthetic "
                 f"songs; held-out median SDR vocals {sep_metrics['median_vocals_sdr']:.1f} dB (mixture "
                 f"{sep_metrics['median_vocals_baseline']:.1f}), accompaniment "
                 f"{sep_metrics['median_accomp_sdr']:.1f} dB (mixture {sep_metrics['median_accomp_baseline']:.1f}); "
                 "good for synthetic songs only"),
        config={"recipe": dataclasses.asdict(separator_recipe), "recipe_digest": separator_recipe.digest()},
        lineage=lineage, metrics={"training": sep_stats, "heldout": sep_metrics},
    )
    aligner = publish_model(
        storage, "aligner", staging / "aligner", name="synth_wav2vec2",
        summary=(f"small wav2vec2 CTC ({align_stats['parameters']:,} parameters) trained on {TRAIN_CORPUS.songs} "
                 f"synthetic songs; held-out median line-boundary error "
                 f"{align_metrics['median_abs_boundary_error']:.2f} s (random model "
                 f"{align_metrics['random_median_abs_boundary_error']:.2f} s); good for synthetic songs only"),
        config={"recipe": dataclasses.asdict(aligner_recipe), "recipe_digest": aligner_recipe.digest()},
        lineage=lineage, metrics={"training": align_stats, "heldout": align_metrics},
    )
    shutil.rmtree(staging, ignore_errors=True)
    return SmallModels(separator, aligner)
