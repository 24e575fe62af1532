"""A stage names the trained model it used (from the model artifact), and a retrained model re-runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

from songcorpus.pipeline.model_registry import local_folder
from songcorpus.pipeline.stage import StageContext
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.stage_configs import AlignConfig
from songcorpus.stages.align import AlignStage
from songcorpus.stages.align_models import build_smoke_align_model
from songcorpus.training.artifacts import publish_model


def _align_stage(folder: Path, root: Path) -> AlignStage:
    return AlignStage(AlignConfig(models={"en": str(folder)}), StageContext(Storage(str(root))))


def test_a_model_inside_an_artifact_is_named_in_the_notices(tmp_path: Path) -> None:
    built = build_smoke_align_model(tmp_path / "build" / "wav2vec2", seed=0)
    storage = Storage(str(tmp_path / "root"))
    artifact = publish_model(storage, "aligner", built.parent, name="synth_wav2vec2",
                             summary="trained on 40 synthetic songs; held-out median line error 0.05 s",
                             config={"steps": 1}, lineage={"corpus_seed": 1})
    folder = local_folder(storage, artifact) / "wav2vec2"
    (notice,) = _align_stage(folder, tmp_path).notices()
    assert notice == (f"align used model aligner/{artifact.id} (synth_wav2vec2): trained on 40 synthetic songs; "
                      "held-out median line error 0.05 s")
    assert _align_stage(built, tmp_path).notices() == []  # a plain folder: nothing to say


def test_retrained_weights_in_the_same_folder_change_the_weights_hash(tmp_path: Path) -> None:
    folder = build_smoke_align_model(tmp_path / "a", seed=0)
    before = _align_stage(folder, tmp_path).weights_hash()
    shutil.rmtree(folder)
    build_smoke_align_model(folder, seed=1)
    assert _align_stage(folder, tmp_path).weights_hash() != before
