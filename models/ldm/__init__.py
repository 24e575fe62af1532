"""SongCreator's decoder from semantic tokens to audio: a waveform VAE and (to come) a latent diffusion model."""

from songcorpus.models.ldm.vae import SIZES, Vae, VaeConfig, VaeOutput, multi_resolution_stft_loss, si_sdr, vae_loss

__all__ = ["SIZES", "Vae", "VaeConfig", "VaeOutput", "multi_resolution_stft_loss", "si_sdr", "vae_loss"]
