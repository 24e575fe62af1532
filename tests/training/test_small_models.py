"""The small separator and aligner: deterministic training, each library's own format and loader, and the
committed copies in assets/ that the demo uses (their files, recipes and the demo job's references)."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
import whisperx

from songcorpus.schemas.model_artifact import ARTIFACT_FILE, ModelArtifact
from songcorpus.stages.demucs_models import load_separator
from songcorpus.synth.corpus import make_corpus
from songcorpus.training.small_aligner import AlignerRecipe, train_aligner, transcript_ids, vocabulary
from songcorpus.training.small_separator import SEPARATOR_NAME, SOURCES, SeparatorRecipe, train_separator

REPO = Path(__file__).parents[2]
TINY_SEPARATOR = SeparatorRecipe(steps=2, batch_size=2, crop_seconds=1.0)
TINY_ALIGNER = AlignerRecipe(steps=3, batch_size=2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    make_corpus(folder, 2, seed=5, min_seconds=8.0, max_seconds=9.0, formats=("flac",), workers=1)
    return folder


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_separator_training_is_deterministic_and_loads_through_demucs(corpus: Path, tmp_path: Path) -> None:
    stats = train_separator(TINY_SEPARATOR, corpus, tmp_path / "a")
    train_separator(TINY_SEPARATOR, corpus, tmp_path / "b")
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b") and stats["steps"] == 2
    assert not list(tmp_path.glob(".*"))  # written beside, then moved into place
    model = load_separator(SEPARATOR_NAME, str(tmp_path / "a"))
    assert list(model.sources) == SOURCES and model.samplerate == 44100
    other = train_separator(SeparatorRecipe(steps=2, batch_size=2, crop_seconds=1.0, seed=1), corpus, tmp_path / "c")
    assert _digests(tmp_path / "c") != _digests(tmp_path / "a") and other["parameters"] == stats["parameters"]


def test_aligner_training_is_deterministic_and_loads_through_whisperx(corpus: Path, tmp_path: Path) -> None:
    train_aligner(TINY_ALIGNER, corpus, tmp_path / "a")
    train_aligner(TINY_ALIGNER, corpus, tmp_path / "b")
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    model, metadata = whisperx.load_align_model("en", "cpu", model_name=str(tmp_path / "a"))
    assert metadata["dictionary"]["|"] == vocabulary()["|"] and metadata["dictionary"]["<pad>"] == 0
    with torch.no_grad():
        frames = model(torch.zeros(1, 16000)).logits.shape[1]
    assert frames == 49  # 50 frames a second, as WhisperX assumes from the emission length


def test_transcripts_are_spelled_the_way_whisperx_spells_them() -> None:
    vocab = vocabulary()
    ids = transcript_ids("Don't STOP, María! 42", vocab)
    assert "".join(next(c for c, i in vocab.items() if i == t) for t in ids) == "don't|stop|maría"


def _artifacts() -> list[tuple[Path, ModelArtifact]]:
    records = sorted((REPO / "assets" / "models").glob(f"*/*/{ARTIFACT_FILE}"))
    return [(r.parent, ModelArtifact.model_validate_json(r.read_text())) for r in records]


def test_the_committed_models_are_whole_and_match_todays_recipes() -> None:
    """A recipe changed without retraining (``songcorpus models train-small --root assets``) fails here."""
    found = {artifact.kind: (folder, artifact) for folder, artifact in _artifacts()}
    assert set(found) == {"separator", "aligner"}
    for folder, artifact in found.values():
        files = {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in folder.rglob("*") if p.is_file() and p.name != ARTIFACT_FILE}
        assert files == artifact.files
    assert found["separator"][1].config["recipe_digest"] == SeparatorRecipe().digest()
    assert found["aligner"][1].config["recipe_digest"] == AlignerRecipe().digest()
    heldout = found["separator"][1].metrics["heldout"]
    assert heldout["median_vocals_sdr"] > heldout["median_vocals_baseline"] + 3
    assert heldout["median_accomp_sdr"] > heldout["median_accomp_baseline"] + 3
    aligner = found["aligner"][1].metrics["heldout"]
    assert aligner["median_abs_boundary_error"] < 0.4 < 1.0 < aligner["random_median_abs_boundary_error"]


def test_the_demo_job_uses_the_committed_models() -> None:
    stages = tomllib.loads((REPO / "jobs" / "demo.toml").read_text())["stages"]
    found = {artifact.kind: folder for folder, artifact in _artifacts()}
    assert (REPO / stages["separate"]["repo"]).resolve() == found["separator"] / "demucs"
    assert {(REPO / m).resolve() for m in stages["align"]["models"].values()} == {found["aligner"] / "wav2vec2"}
    assert np.all([Path(REPO / m).is_dir() for m in stages["align"]["models"].values()])
