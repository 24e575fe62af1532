"""SECS, speaker-embedding cosine similarity: the cosine of two Resemblyzer speaker embeddings (d-vectors of its
LSTM encoder; its weights ship inside its PyPI package) of two vocal tracks, each resampled to 16 kHz, normalised
and cut to its voiced parts by Resemblyzer's own ``preprocess_wav``. SongCreator reports it for prompt
lyrics-to-vocals and vocals editing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class SpeakerEncoder:
    """Resemblyzer's ``VoiceEncoder`` with its packaged weights, loaded with ``weights_only=True``."""

    def __init__(self, device: str = "cpu") -> None:
        import resemblyzer
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder(device, verbose=False)
        weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
        state = torch.load(weights, map_location="cpu", weights_only=True)["model_state"]
        # the checkpoint also holds the GE2E training loss's two scalars, which the encoder does not use
        result = self.encoder.load_state_dict(state, strict=False)
        if result.missing_keys or set(result.unexpected_keys) - {"similarity_weight", "similarity_bias"}:
            raise ValueError(f"{weights} does not fit Resemblyzer's VoiceEncoder: {result}")
        self.encoder.eval()

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """The unit-length speaker embedding of mono ``audio``."""
        from resemblyzer import preprocess_wav

        wav = preprocess_wav(np.asarray(audio, dtype=np.float32), source_sr=sample_rate)
        if wav.size == 0:
            raise ValueError("no voiced audio to embed (silent, or all of it trimmed as silence)")
        return np.asarray(self.encoder.embed_utterance(wav), dtype=np.float64)

    def secs(self, a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
        """Cosine similarity of the speaker embeddings of ``a`` and ``b`` (mono, both at ``sample_rate``)."""
        x, y = self.embed(a, sample_rate), self.embed(b, sample_rate)
        return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))
