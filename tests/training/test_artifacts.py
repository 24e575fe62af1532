"""The model registry: content-addressed ids, immutability, listing, resolving, diffs and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from songcorpus.cli import main
from songcorpus.pipeline.errors import UserError
from songcorpus.pipeline.model_registry import artifact_dir, list_models, local_folder, resolve_model
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.model_artifact import ARTIFACT_FILE, ModelArtifact
from songcorpus.training.artifacts import diff_models, publish_model


def _weights(folder: Path, payload: bytes) -> Path:
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "weights.bin").write_bytes(payload)
    (folder / "sub" / "config.json").write_text('{"layers": 2}')
    return folder


def _publish(storage: Storage, folder: Path, steps: int, sdr: float = 5.0) -> ModelArtifact:
    return publish_model(storage, "separator", folder, name="synth_htdemucs", summary=f"{steps} steps",
                         config={"steps": steps}, lineage={"corpus_seed": 1}, metrics={"sdr": sdr})


def test_same_files_and_recipe_give_the_same_id_and_one_folder(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path / "root"))
    folder = _weights(tmp_path / "w", b"\x00" * 64)
    first = _publish(storage, folder, 10)
    again = _publish(storage, folder, 10, sdr=9.0)  # metrics are not identity: the existing model comes back
    assert again == first and len(first.id) == 16
    assert sorted(first.files) == ["sub/config.json", "weights.bin"]
    published = local_folder(storage, first)
    assert (published / "weights.bin").read_bytes() == b"\x00" * 64 and (published / ARTIFACT_FILE).exists()
    assert [p.name for p in (tmp_path / "root" / "models").iterdir()] == ["separator"]  # no staging left
    other_recipe = _publish(storage, folder, 11)
    other_weights = _publish(storage, _weights(tmp_path / "w2", b"\x01" * 64), 10)
    assert len({first.id, other_recipe.id, other_weights.id}) == 3


def test_list_resolve_and_diff(tmp_path: Path) -> None:
    storage = Storage(str(tmp_path))
    a = _publish(storage, _weights(tmp_path / "a", b"a"), 1, sdr=4.0)
    b = _publish(storage, _weights(tmp_path / "b", b"b"), 2, sdr=6.0)
    (tmp_path / artifact_dir("separator", "0" * 16)).mkdir(parents=True)  # unfinished: never listed
    assert [m.id for m in list_models(storage)] == [m.id for m in sorted([a, b], key=lambda m: (m.created, m.id))]
    assert resolve_model(storage, f"separator/{a.id}") == a
    assert resolve_model(storage, a.id[:6]) == a
    assert resolve_model(storage, "separator/latest") in (a, b)
    with pytest.raises(UserError, match="no model matches"):
        resolve_model(storage, "abc")
    with pytest.raises(UserError, match="unknown model kind"):
        resolve_model(storage, "vocoder/latest")
    changes = diff_models(a, b)
    assert changes["config"] == {"steps": (1, 2)} and changes["metrics"] == {"sdr": (4.0, 6.0)}
    assert set(changes["files"]) == {"weights.bin"}


def test_cli_lists_shows_and_diffs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = Storage(str(tmp_path))
    a = _publish(storage, _weights(tmp_path / "a", b"a"), 1)
    b = _publish(storage, _weights(tmp_path / "b", b"b"), 2)
    assert main(["models", "list", "--root", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert a.id in listing and b.id in listing and "1 steps" in listing
    assert main(["models", "show", a.id[:8], "--root", str(tmp_path)]) == 0
    assert '"steps": 1' in capsys.readouterr().out
    assert main(["models", "diff", a.id, b.id, "--root", str(tmp_path)]) == 0
    assert "config.steps: 1 -> 2" in capsys.readouterr().out
    assert main(["models", "show", "separator/ffffff", "--root", str(tmp_path)]) == 2
    assert "no model matches" in capsys.readouterr().err
