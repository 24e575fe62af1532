"""SongCreator's decoder from semantic tokens to audio: an audio VAE (spectral or waveform style) and a latent
diffusion model (rectified flow) that samples the VAE's latents from the tokens."""

from songcorpus.models.ldm.decoder import TokenDecoder
from songcorpus.models.ldm.diffusion import Ldm, LdmConfig
from songcorpus.models.ldm.vae import Vae, VaeConfig, VaeOutput, multi_resolution_stft_loss, si_sdr, vae_loss

__all__ = ["Ldm", "LdmConfig", "TokenDecoder", "Vae", "VaeConfig", "VaeOutput", "multi_resolution_stft_loss",
           "si_sdr", "vae_loss"]
