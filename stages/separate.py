"""separate: Demucs vocals and accompaniment, with a vocal-activity envelope for segmenting."""

from __future__ import annotations

import io
import logging
import math

import numpy as np
import torch

from ..pipeline.stage import Reject, Result, Stage
from ..pipeline.storage import artifact_path
from ..schemas.stage_configs import SeparateConfig
from .audio_io import encode_flac, read_flac
from .audio_stats import frame_rms_db
from .demucs_models import is_smoke, load_separator, weights_digest
from .separation import SeparationSettings, separate

log = logging.getLogger(__name__)

AUTOCAST = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def _energy_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(max(float(np.mean(audio.astype(np.float64) ** 2)), 1e-12)))


class SeparateStage(Stage[SeparateConfig]):
    """Songs in, vocals and accompaniment FLAC stems out; segments of a whole batch share forwards."""

    name = "separate"
    version = 1
    config_type = SeparateConfig

    def setup(self) -> None:
        cfg = self.config
        threads = cfg.cpu_threads or max(1, math.ceil(cfg.resources.num_cpus))
        torch.set_num_threads(threads)
        self.model = load_separator(cfg.model, cfg.repo)
        if cfg.device == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            device = torch.device(cfg.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("stages.separate.device = 'cuda' but this worker sees no GPU")
        self.model.to(device)
        on_gpu = device.type == "cuda"
        self.settings = SeparationSettings(
            segment=cfg.segment,
            overlap=cfg.overlap,
            shifts=cfg.shifts,
            batch_segments=cfg.batch_segments if on_gpu else 1,  # batching only pays off on a GPU
            device=device,
            autocast_dtype=AUTOCAST[cfg.precision] if on_gpu else None,
            seed=cfg.seed,
        )
        log.info("separate: %s on %s (%d threads)", cfg.model, device, threads)

    def weights_hash(self) -> str:
        """Loads the model on the driver too: the preflight check that it exists and loads."""
        model = getattr(self, "model", None) or load_separator(self.config.model, self.config.repo)
        return weights_digest(model)

    def notices(self) -> list[str]:
        if is_smoke(self.config.model, self.config.repo):
            return [
                (f"separate used the smoke-test model {self.config.model} (random weights, built offline): "
                "its stems are not real separations")
            ]
        return []

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        result = self.process_batch([(item_id, record, fingerprint)])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def process_batch(self, items: list[tuple[str, dict, str]]) -> list[Result | BaseException]:
        """Decode every song, separate all decodable ones together, then write each song's stems."""
        results: list[Result | BaseException | None] = [None] * len(items)
        loaded = []
        for index, (_, record, _) in enumerate(items):
            try:
                loaded.append((index, *self._load(record)))
            except Exception as exc:  # noqa: BLE001 - becomes this item's rejection
                results[index] = exc
        try:
            stems = separate(self.model, [torch.from_numpy(mix) for _, mix, _ in loaded], self.settings)
        except torch.OutOfMemoryError:
            log.warning("separate: out of memory on a batch of %d songs; retrying one by one", len(loaded))
            stems = None
        for position, (index, mix, rate) in enumerate(loaded):
            _, record, fingerprint = items[index]
            try:
                pair = stems[position] if stems is not None else separate(
                    self.model, [torch.from_numpy(mix)], self.settings
                )[0]
                results[index] = self._finish(record, fingerprint, mix, rate, *pair)
            except Exception as exc:  # noqa: BLE001 - becomes this item's rejection
                results[index] = exc
        return [r if r is not None else RuntimeError("no result") for r in results]

    def _load(self, record: dict) -> tuple[np.ndarray, int]:
        try:
            mix, rate = read_flac(self.context.storage.read_bytes(record["audio"]))
        except (OSError, RuntimeError) as exc:  # libsndfile errors are RuntimeErrors
            raise Reject(
                "input_artifact_unreadable",
                f"standardized audio {record.get('audio')} cannot be read ({exc}); delete it to redo standardize",
                retryable=True,
            ) from None
        if rate != self.model.samplerate or mix.shape[0] != self.model.audio_channels:
            raise Reject(
                "input_format_mismatch",
                f"the model wants {self.model.audio_channels} channels at {self.model.samplerate} Hz, got "
                f"{mix.shape[0]} at {rate} Hz: set stages.standardize.sample_rate / channels to match",
            )
        return mix, rate

    def _finish(
        self, record: dict, fingerprint: str, mix: np.ndarray, rate: int, vocals: torch.Tensor, rest: torch.Tensor
    ) -> Result:
        cfg = self.config
        vocals_np = vocals.numpy()
        accomp = mix - vocals_np if cfg.accompaniment == "mixture_minus_vocals" else rest.numpy()
        # FLAC holds [-1, 1]: scale both stems together rather than clip, and record the scale
        peak = max(float(np.abs(vocals_np).max(initial=0)), float(np.abs(accomp).max(initial=0)))
        scale = 1.0 if peak <= 0.999 else 0.999 / peak
        storage = self.context.storage
        paths = {name: artifact_path(self.name, fingerprint, f"{name}.flac") for name in ("vocals", "accomp")}
        storage.write_bytes(paths["vocals"], encode_flac(vocals_np * scale, rate))
        storage.write_bytes(paths["accomp"], encode_flac(accomp * scale, rate))
        levels = frame_rms_db(vocals_np, rate, cfg.activity_frame_seconds).astype(np.float16)
        buf = io.BytesIO()
        np.save(buf, levels, allow_pickle=False)
        activity_rel = artifact_path(self.name, fingerprint, "vocal_activity.npy")
        storage.write_bytes(activity_rel, buf.getvalue())
        vocal_db, accomp_db = _energy_db(vocals_np), _energy_db(accomp)
        out = {
            **record,
            "vocals": paths["vocals"],
            "accomp": paths["accomp"],
            "stem_scale": round(scale, 9),
            "accompaniment_rule": cfg.accompaniment,
            "separation_model": cfg.model,
            "vocal_activity": activity_rel,
            "vocal_activity_frame_seconds": cfg.activity_frame_seconds,
            "vocal_energy_db": round(vocal_db, 3),
            "accomp_energy_db": round(accomp_db, 3),
            "vocal_to_accomp_db": round(vocal_db - accomp_db, 3),
            "vocal_active_ratio": round(float(np.mean(levels > cfg.activity_threshold_db)) if levels.size else 0.0, 4),
        }
        return Result(out, audio_seconds=mix.shape[1] / rate)

