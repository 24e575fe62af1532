"""The VAE: its latent runs at the token rate in both styles, and a tiny one trained for a bounded number of steps on
synthetic songs reconstructs a held-out song better than its untrained self: the spectral style in seconds, from
latents its decoder depends on frame by frame; the waveform style in minutes (-m long), where SI-SDR rises too."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch
import torchaudio.functional as taf

from songcorpus.models.ldm.vae import Vae, config_for, multi_resolution_stft_loss, si_sdr, vae_loss
from songcorpus.synth.corpus import make_corpus


@pytest.mark.parametrize("size", ["tiny", "tiny-waveform"])
def test_the_latent_runs_at_the_token_rate_and_any_length_comes_back(size: str) -> None:
    vae = Vae(config_for(size)).eval()
    assert vae.config.latent_rate == 50.0
    for samples in (24000 + 123, 700):  # shorter than the spectral style's window
        audio = torch.randn(2, samples) * 0.1
        mean, _ = vae.encode(audio)
        assert mean.shape == (2, 32, -(-samples // 480))
        assert vae(audio).reconstruction.shape == audio.shape


@pytest.fixture(scope="module")
def mixes(tmp_path_factory: pytest.TempPathFactory) -> list[torch.Tensor]:
    """Four synthetic songs at 24 kHz mono; the last is held out."""
    folder = tmp_path_factory.mktemp("songs")
    make_corpus(folder, 4, seed=5, min_seconds=8.0, max_seconds=9.0, formats=("flac",), workers=1)
    out = []
    for path in sorted(Path(folder).rglob("*.flac")):
        if "vocals" not in path.name and "accomp" not in path.name:
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
            out.append(taf.resample(torch.from_numpy(audio.mean(axis=1)), rate, 24000))
    return out


def _train(size: str, mixes: list[torch.Tensor], steps: int) -> tuple[Vae, Vae]:
    """The untrained and the trained tiny VAE (the same initial weights), ``steps`` batches of 8 1-s crops of the
    first three songs."""
    torch.manual_seed(0)
    untrained, vae = Vae(config_for(size)).eval(), Vae(config_for(size))
    vae.load_state_dict(untrained.state_dict())
    optimizer = torch.optim.Adam(vae.parameters(), lr=2e-3, betas=(0.8, 0.99))
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        rows = []
        for _ in range(8):
            song = mixes[int(torch.randint(len(mixes) - 1, (1,), generator=generator))]
            start = int(torch.randint(song.numel() - 24000, (1,), generator=generator))
            rows.append(song[start : start + 24000])
        batch = torch.stack(rows)
        loss, _ = vae_loss(vae(batch, generator), batch, vae.config.kl_weight)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return untrained, vae.eval()


@torch.no_grad()
def _reconstruct(vae: Vae, audio: torch.Tensor, order: torch.Tensor | None = None) -> torch.Tensor:
    """``audio`` through the mean latent, as decoding does; ``order`` reorders the latent frames first."""
    mean, _ = vae.encode(audio)
    return vae.decode(mean if order is None else mean[..., order])[:, : audio.shape[-1]]


def test_a_tiny_spectral_vae_learns_to_reconstruct_a_held_out_song_from_its_latents(mixes) -> None:
    untrained, vae = _train("tiny", mixes, 150)  # ~10 s
    held_out = mixes[-1][None, : 4 * 24000]
    before, after = (float(multi_resolution_stft_loss(_reconstruct(v, held_out), held_out)) for v in (untrained, vae))
    shuffled = float(multi_resolution_stft_loss(
        _reconstruct(vae, held_out, torch.randperm(200, generator=torch.Generator().manual_seed(0))), held_out))
    print(f"held-out MR-STFT distance {before:.2f} -> {after:.2f}; latent frames shuffled {shuffled:.2f}")
    assert after < 0.85 * before
    assert shuffled > after + 0.05  # the decoder reads each frame's latent, not an average spectrum


@pytest.mark.long  # ~1.5 min on 2 cores; measured: MR-STFT 3.41 -> 2.66, SI-SDR -67 -> -40 dB (phase comes much later)
def test_a_tiny_waveform_vae_learns_to_reconstruct_a_held_out_song(mixes: list[torch.Tensor]) -> None:
    untrained, vae = _train("tiny-waveform", mixes, 150)
    held_out = mixes[-1][None, : 3 * 24000]
    distance = [float(multi_resolution_stft_loss(_reconstruct(v, held_out), held_out)) for v in (untrained, vae)]
    sdr = [float(si_sdr(_reconstruct(v, held_out), held_out)) for v in (untrained, vae)]
    print(f"held-out MR-STFT distance {distance[0]:.2f} -> {distance[1]:.2f}, SI-SDR {sdr[0]:.1f} -> {sdr[1]:.1f} dB")
    assert distance[1] < 0.85 * distance[0] and sdr[1] > sdr[0] + 10
