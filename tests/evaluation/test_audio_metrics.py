"""FAD and MCD on real signals (synthetic songs): zero against themselves, growing with noise; MCD against a
hand-worked example."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from songcorpus.evaluation.audio_metrics import (
    MCD_CONSTANT,
    dtw_path,
    fad,
    frechet_distance,
    mcd,
    mcd_from_cepstra,
    tokenizer_embedder,
)
from songcorpus.pipeline.storage import Storage
from songcorpus.stages.tokenize import load_tokenizer
from songcorpus.synth.corpus import make_corpus
from songcorpus.training.smoke_tokenizer import publish_smoke_tokenizer

SNRS = (30.0, 20.0, 10.0, 0.0)  # dB: more noise from left to right


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[torch.Tensor, int]]:
    """The mixtures of three synthetic songs, mono."""
    folder = tmp_path_factory.mktemp("songs")
    make_corpus(folder, 3, seed=11, min_seconds=8.0, max_seconds=9.0, formats=("flac",), workers=1)
    out = []
    for path in sorted(Path(folder).rglob("*.flac")):
        if "vocals" in path.name or "accomp" in path.name:
            continue
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        out.append((torch.from_numpy(audio.mean(axis=1)), rate))
    assert len(out) == 3
    return out


def _noisy(audio: torch.Tensor, snr: float, seed: int) -> torch.Tensor:
    noise = torch.randn(audio.shape, generator=torch.Generator().manual_seed(seed))
    return audio + noise * audio.pow(2).mean().sqrt() / noise.pow(2).mean().sqrt() * 10 ** (-snr / 20)


def test_mcd_matches_a_hand_worked_example() -> None:
    # frame 0 differs by (1, 0): (10 / ln 10) * sqrt(2 * 1) = 6.1418 dB; frame 1 is equal: 0 dB; mean 3.0709 dB
    assert mcd_from_cepstra(np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[1.0, 0.0], [3.0, 4.0]])) == \
        pytest.approx(10 / math.log(10) * math.sqrt(2) / 2, abs=1e-9)
    assert pytest.approx(6.1418, abs=1e-4) == MCD_CONSTANT
    # DTW absorbs a held frame: the same cepstra at another tempo are 0 dB apart
    assert mcd_from_cepstra(np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]]), np.array([[0.0, 0.0], [3.0, 4.0]])) == 0
    assert dtw_path(np.array([[0.0, 9.0], [9.0, 0.0], [9.0, 0.0]])) == [(0, 0), (1, 1), (2, 1)]


def test_mcd_is_zero_against_itself_and_grows_with_noise(songs: list[tuple[torch.Tensor, int]]) -> None:
    audio, rate = songs[0]
    clip = audio[: rate * 4]
    assert mcd(clip, clip, rate) == 0.0
    distortions = [mcd(clip, _noisy(clip, snr, 1), rate) for snr in SNRS]
    assert all(a < b for a, b in itertools.pairwise(distortions)), distortions


def test_frechet_distance_of_known_gaussians() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) * 2 + np.array([1.0, 0.0, 0.0])
    # |mu|^2 = 1; Tr(I + 4I - 2 * 2I) = 3
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.03)


def test_fad_is_zero_against_itself_and_grows_with_noise(songs: list[tuple[torch.Tensor, int]],
                                                         tmp_path: Path) -> None:
    artifact = publish_smoke_tokenizer(Storage(str(tmp_path)), size="tiny", codes=16)
    embedder = tokenizer_embedder(load_tokenizer(tmp_path / "models" / "tokenizer" / artifact.id), "random-tiny")
    same = fad(embedder, songs, songs)
    assert same.fad == pytest.approx(0.0, abs=1e-6) and same.label == "FAD[bestrq-random-tiny-L1]"
    scores = [fad(embedder, songs, [(_noisy(a, snr, i), r) for i, (a, r) in enumerate(songs)]) for snr in SNRS]
    values = [s.fad for s in scores]
    assert all(a < b for a, b in itertools.pairwise(values)), values
    assert scores[0].test_frames == same.test_frames > 1000 and all(math.isfinite(s.fad_infinity) for s in scores)


def test_vggish_reads_its_weights_from_the_torch_hub_cache_only(songs: list[tuple[torch.Tensor, int]], tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The real loading path (torchaudio's VGGish in the torch hub cache) with random weights in that file."""
    import warnings

    from songcorpus.evaluation.embedders import vggish_embedder, vggish_weights
    from songcorpus.pipeline.errors import UserError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError, match=r"needs VGGish's weights at .*vggish\.pt.*--fad-embedder own"):
        vggish_embedder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchaudio.prototype.pipelines import VGGISH
    torch.manual_seed(0)
    random = VGGISH.VGGish()
    for module in random.modules():  # He initialisation, so that activations keep their scale through the layers
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            torch.nn.init.zeros_(module.bias)  # type: ignore[arg-type]  # VGGish's layers all have biases
    vggish_weights().parent.mkdir(parents=True)
    torch.save(random.state_dict(), vggish_weights())
    embedder = vggish_embedder()
    same = fad(embedder, songs, songs)
    assert same.label == "FAD[vggish]" and same.fad == pytest.approx(0.0, abs=1e-6)
    assert same.test_frames == sum(int(a.numel() / r / 0.96) for a, r in songs)  # one embedding per 0.96 s
    values = [fad(embedder, songs, [(_noisy(a, snr, i), r) for i, (a, r) in enumerate(songs)]).fad for snr in SNRS]
    assert all(a < b for a, b in itertools.pairwise(values)), values
