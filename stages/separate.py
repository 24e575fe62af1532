"""separate: Demucs vocals and accompaniment, with a vocal-activity envelope for segmenting."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from functools import partial

import numpy as np
import torch

from ..pipeline.background import BackgroundWork
from ..pipeline.stage import BatchStage, Reject, Result
from ..pipeline.storage import artifact_path
from ..schemas.song_records import SeparatedSong, StandardizedSong
from ..schemas.stage_configs import SeparateConfig
from .audio_io import encode_flac, read_flac
from .audio_stats import frame_rms_db
from .demucs_models import is_smoke, load_separator, weights_digest
from .demucs_stream import SeparationSettings, model_segment_seconds, separate_stream, warm_up
from .devices import SideBySide, stage_device, worker_threads
from .model_provenance import trained_model_notice

log = logging.getLogger(__name__)

AUTOCAST = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def _energy_db(audio: np.ndarray) -> float:
    return float(10 * np.log10(max(float(np.mean(audio.astype(np.float64) ** 2)), 1e-12)))


class SeparateStage(BatchStage[SeparateConfig]):
    """Songs in, vocals and accompaniment FLAC stems out; segments of a whole batch share forwards."""

    name = "separate"
    version = 2  # 2: records the vocal-activity threshold it used (vocal_activity_threshold_db)

    def setup(self) -> None:
        cfg = self.config
        threads = worker_threads(cfg.cpu_threads, self.context.cpus)
        device = stage_device(self.name, cfg.device)
        self.model = load_separator(cfg.model, cfg.repo).to(device)
        on_gpu = device.type == "cuda"
        if on_gpu:
            torch.set_num_threads(threads)
        self.settings = SeparationSettings(
            segment=cfg.segment,
            overlap=cfg.overlap,
            shifts=cfg.shifts,
            # on a CPU: one segment per forward, ``threads`` forwards side by side (same bytes on any CPU count)
            batch_segments=cfg.batch_segments if on_gpu else threads,
            device=device,
            autocast_dtype=AUTOCAST[cfg.precision] if on_gpu else None,
            seed=cfg.seed,
            cpu_forwards=None if on_gpu else SideBySide(threads),
        )
        # On a GPU the host-side writing of finished songs overlaps the next forward passes; on a CPU
        # the forwards already use every core, so it runs in line.
        self.writer_threads = max(1, threads - 1) if on_gpu else 0
        self._warm_up()
        log.info("separate: %s on %s (%d threads, %d segments per pass)", cfg.model, device, threads,
                 self.settings.batch_segments)

    def _warm_up(self) -> None:
        """Run one full forward pass before the first song, halving ``batch_segments`` until it fits."""
        while True:
            try:
                warm_up(self.model, self.settings)
                return
            except torch.OutOfMemoryError:
                if not self._shrink_batch():
                    seconds = model_segment_seconds(self.model, self.config.segment)
                    raise ValueError(
                        f"stages.separate: one {seconds:g} s segment of {self.config.model} does not fit this GPU; "
                        "lower stages.separate.segment"
                    ) from None

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
        trained = trained_model_notice(self.name, self.config.repo) if self.config.repo else None
        return [trained] if trained else []

    def process_batch(self, items: list[tuple[str, dict, str]]) -> list[Result | BaseException]:
        """Separate the batch's songs as one stream; each song is written as soon as its stems are done.

        A CUDA out-of-memory error halves ``batch_segments`` for this worker and redoes the songs
        not yet written; with one segment per pass it becomes a retryable rejection.
        """
        results: dict[int, Result | BaseException] = {}
        while len(results) < len(items):
            todo = [i for i in range(len(items)) if i not in results]
            try:
                self._separate(items, todo, results)
            except torch.OutOfMemoryError:
                if not self._shrink_batch():
                    for index in todo:
                        results.setdefault(index, self._out_of_memory(items[index][1]))
        return [results[i] for i in range(len(items))]

    def _out_of_memory(self, record: dict) -> Exception:
        """The rejection of a song left over when even one segment per pass runs out of memory."""
        try:
            self._load(record)  # an unreadable or malformed song says so rather than blaming the GPU
        except Exception as exc:  # noqa: BLE001 - becomes this item's rejection
            return exc
        return Reject(
            "out_of_memory",
            "one segment does not fit the GPU: lower stages.separate.segment or use a larger GPU",
            retryable=True,
        )

    def _separate(
        self, items: list[tuple[str, dict, str]], todo: list[int], results: dict[int, Result | BaseException]
    ) -> None:
        """Decode songs as the stream asks for them; hand each finished song to the host-side writer."""
        mixes: dict[int, tuple[StandardizedSong, np.ndarray]] = {}

        def decoded() -> Iterator[tuple[int, torch.Tensor]]:
            for index in todo:
                try:
                    with self.timed("decode"):
                        mixes[index] = self._load(items[index][1])
                except Exception as exc:  # noqa: BLE001 - becomes this item's rejection
                    results[index] = exc
                    continue
                yield index, torch.from_numpy(mixes[index][1])

        writer = BackgroundWork[Result](self.writer_threads)
        before = self.peek_timings()
        started = time.perf_counter()
        try:
            with writer:  # on leaving, every queued song is written, also after an error
                for index, vocals, rest in separate_stream(self.model, decoded(), self.settings):
                    song, mix = mixes.pop(index)
                    finish = partial(self._finish, song, items[index][2], mix, vocals.numpy(), rest.numpy())
                    writer.submit(index, finish)
        finally:
            results.update(writer.outcomes)
            # what the loop spent neither decoding nor (when written in line) writing was the model's
            spent = self.peek_timings()
            inline = ("decode",) if self.writer_threads else ("decode", "write")
            other = sum(spent.get(k, 0.0) - before.get(k, 0.0) for k in inline)
            self.add_timing("separate", time.perf_counter() - started - other)

    def _shrink_batch(self) -> bool:
        """Halve the segments per forward pass after an out-of-memory error; False if already one."""
        if self.settings.batch_segments == 1:
            return False
        smaller = self.settings.batch_segments // 2
        log.warning("separate: out of GPU memory at %d segments per pass; using %d from now on",
                    self.settings.batch_segments, smaller)
        self.settings = replace(self.settings, batch_segments=smaller)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return True

    def _load(self, record: dict) -> tuple[StandardizedSong, np.ndarray]:
        """The song's validated record and its standardized mixture, ``(channels, samples)``."""
        song = StandardizedSong.model_validate(record)
        try:
            mix, rate = read_flac(self.context.storage.read_bytes(song.audio))
        except (OSError, RuntimeError) as exc:  # libsndfile errors are RuntimeErrors
            raise Reject(
                "input_artifact_unreadable",
                f"standardized audio {song.audio} cannot be read ({exc}); delete it to redo standardize",
                retryable=True,
            ) from None
        if rate != self.model.samplerate or mix.shape[0] != self.model.audio_channels:
            raise Reject(
                "input_format_mismatch",
                f"the model wants {self.model.audio_channels} channels at {self.model.samplerate} Hz, got "
                f"{mix.shape[0]} at {rate} Hz: set stages.standardize.sample_rate / channels to match",
            )
        return song, mix

    def _finish(
        self, song: StandardizedSong, fingerprint: str, mix: np.ndarray, vocals_np: np.ndarray, rest: np.ndarray
    ) -> Result:
        """Write one song's stems and vocal-activity envelope; compute its level statistics."""
        with self.timed("write"):
            return self._write(song, fingerprint, mix, vocals_np, rest)

    def _write(
        self, song: StandardizedSong, fingerprint: str, mix: np.ndarray, vocals_np: np.ndarray, rest: np.ndarray
    ) -> Result:
        cfg = self.config
        rate = self.model.samplerate
        accomp = mix - vocals_np if cfg.accompaniment == "mixture_minus_vocals" else rest
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
        out = SeparatedSong.extending(
            song,
            vocals=paths["vocals"],
            accomp=paths["accomp"],
            stem_scale=round(scale, 9),
            accompaniment_rule=cfg.accompaniment,
            separation_model=cfg.model,
            vocal_activity=activity_rel,
            vocal_activity_frame_seconds=cfg.activity_frame_seconds,
            vocal_activity_threshold_db=cfg.activity_threshold_db,
            vocal_energy_db=round(vocal_db, 3),
            accomp_energy_db=round(accomp_db, 3),
            vocal_to_accomp_db=round(vocal_db - accomp_db, 3),
            vocal_active_ratio=round(float(np.mean(levels > cfg.activity_threshold_db)) if levels.size else 0.0, 4),
        )
        return Result(out.model_dump(mode="json"), audio_seconds=mix.shape[1] / rate)

