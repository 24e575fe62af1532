"""align: WhisperX forced alignment of the known lyrics to the separated vocals.

LRC lyrics give each line a window directly. Plain-text lyrics are first located in the song by a
coarse CTC pass over the whole vocals stem (see ``coarse_align``). WhisperX then aligns the words
of every line inside its window. Output: per line and per word start, end and score, plus the
song's coverage (share of lyric lines aligned) and mean score.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
from pathlib import Path

import huggingface_hub
import nltk
import numpy as np
import torch
import torchaudio.functional as taf
import whisperx
from whisperx.utils import PUNKT_LANGUAGES

from ..pipeline.errors import UserError
from ..pipeline.stage import Reject, Result, Stage
from ..pipeline.storage import artifact_path
from ..schemas.lyrics import LyricLine
from ..schemas.song_records import AlignedLine, AlignedSong, Alignment, AlignmentSummary, SeparatedSong, Word
from ..schemas.stage_configs import AlignConfig
from .align_models import SMOKE_ALIGN_MODEL, build_smoke_align_model, check_hf_ctc_folder, provision_punkt
from .audio_io import read_flac
from .coarse_align import SAMPLE_RATE, emissions, line_windows
from .devices import stage_device
from .lyrics import LyricsError, parse_lyrics
from .model_provenance import hf_folder_digest, trained_model_notice

log = logging.getLogger(__name__)


class AlignStage(Stage[AlignConfig]):
    """Songs with vocals stems and lyrics in, word- and line-level timings out."""

    name = "align"
    version = 2  # 2: the alignment summary is one nested record field, ``align``, instead of align_* keys

    def setup(self) -> None:
        cfg = self.config
        self.device = stage_device(self.name, cfg.device)
        languages = sorted({*PUNKT_LANGUAGES.values(), "english"})
        if cfg.smoke_dir:
            punkt_root: Path | None = Path(cfg.smoke_dir) / "nltk_data"
        elif all(_has_punkt(language) for language in languages):
            punkt_root = None  # NLTK's own tables are installed: use them
        else:  # offline, NLTK would try to download them: default rules instead, kept under the root
            storage = self.context.storage
            punkt_root = Path(storage.full("cache/nltk_data") if storage.is_local else tempfile.mkdtemp())
            log.info("NLTK Punkt tables not installed: WhisperX splits sentences with default rules (%s)", punkt_root)
        if punkt_root is not None:
            provision_punkt(punkt_root, languages)
            if str(punkt_root) not in nltk.data.path:
                nltk.data.path.insert(0, str(punkt_root))
        self._models: dict[str, tuple[torch.nn.Module, dict]] = {}

    def _model_name(self, language: str) -> str | None:
        if self.config.smoke_dir:
            return str(build_smoke_align_model(Path(self.config.smoke_dir) / SMOKE_ALIGN_MODEL))
        return self.config.models.get(language)

    def _model(self, language: str) -> tuple[torch.nn.Module, dict]:
        """The alignment model for ``language``, loaded once per worker through WhisperX."""
        if language not in self._models:
            try:
                self._models[language] = whisperx.load_align_model(
                    language, str(self.device), model_name=self._model_name(language)
                )
            except (ValueError, OSError) as exc:  # WhisperX: no default model; HF: not found/offline
                if language in self.config.models:  # the job named it: its failure, not this song's
                    raise RuntimeError(f"stages.align.models.{language} does not load: {exc}") from exc
                raise Reject(
                    "no_alignment_model",
                    f"no alignment model for language {language!r} ({exc}); set stages.align.models.{language}",
                ) from None
        return self._models[language]

    def _local_folders(self) -> dict[str, Path]:
        """Language (``*`` for the smoke model) -> model folder on this machine; hub names are not folders."""
        if self.config.smoke_dir:
            return {"*": build_smoke_align_model(Path(self.config.smoke_dir) / SMOKE_ALIGN_MODEL)}
        return {lang: Path(m) for lang, m in sorted(self.config.models.items()) if Path(m).is_dir()}

    def preflight(self) -> None:
        """Every model the job names must be there: a local folder with a wav2vec2 CTC model and its processor
        (read without its weights, so a rerun stays cheap), or a hub name in the Hugging Face cache when the
        hub cannot be reached (``HF_HUB_OFFLINE``)."""
        if self.config.smoke_dir:
            return
        for language, name in sorted(self.config.models.items()):
            key = f"stages.align.models.{language}"
            folder = Path(name)
            if folder.is_absolute() or folder.exists() or name.count("/") > 1 or name.startswith((".", "~")):
                check_hf_ctc_folder(folder, key)
            elif huggingface_hub.constants.HF_HUB_OFFLINE and not isinstance(
                    huggingface_hub.try_to_load_from_cache(name, "config.json"), str):
                raise UserError(f"{key} = {name!r}: not a folder, and not in the Hugging Face cache (HF_HUB_OFFLINE "
                                "is set, so it cannot be downloaded): give a local model folder or fill the cache")

    def weights_hash(self) -> str:
        """Hashes the weights of local models (hub names are in the config), so a retrain re-runs alignment."""
        folders = {lang: hf_folder_digest(folder) for lang, folder in self._local_folders().items()}
        return hashlib.sha256(json.dumps(folders, sort_keys=True).encode()).hexdigest()[:32]

    def notices(self) -> list[str]:
        if self.config.smoke_dir:
            return [f"align used the smoke-test model {SMOKE_ALIGN_MODEL} (random weights): its timings are not real"]
        folders = sorted(set(self._local_folders().values()))
        return [n for n in (trained_model_notice(self.name, f) for f in folders) if n]

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        song = SeparatedSong.model_validate(record)
        language = song.language or self.config.default_language
        try:
            lyrics = parse_lyrics(song.lyrics, language=language, duration=song.duration)
        except LyricsError as exc:
            where = f" (line {exc.line})" if exc.line else ""
            raise Reject(exc.reason, f"{exc.message}{where}") from None
        vocals, rate = read_flac(self.context.storage.read_bytes(song.vocals))
        audio = taf.resample(torch.from_numpy(vocals.mean(axis=0)), rate, SAMPLE_RATE)
        seconds = audio.shape[-1] / SAMPLE_RATE
        model, metadata = self._model(language)
        windows = self._windows(lyrics.lines, model, metadata, audio, seconds)
        lines = self._align_lines(lyrics.lines, windows, model, metadata, audio)
        aligned = [line for line in lines if line.start is not None]
        scores = [line.score for line in aligned if line.score is not None]
        summary = AlignmentSummary(
            language=language,
            lyrics_format=lyrics.format,
            lines_total=len(lines),
            lines_aligned=len(aligned),
            coverage=round(len(aligned) / len(lines), 4) if lines else 0.0,
            mean_score=round(float(np.mean(scores)), 4) if scores else 0.0,
            notes=lyrics.notes,
        )
        rel = artifact_path(self.name, fingerprint, "alignment.json")
        alignment = Alignment(**dict(summary), lines=lines)
        self.context.storage.write_bytes(rel, alignment.model_dump_json().encode())
        out = AlignedSong.extending(song, alignment=rel, align=summary)
        return Result(out.model_dump(mode="json"), audio_seconds=seconds)

    def _windows(self, lines: tuple[LyricLine, ...], model: torch.nn.Module, metadata: dict, audio: torch.Tensor,
                 seconds: float) -> list[tuple[float, float] | None]:
        cfg = self.config
        timed = [(line, line.start) for line in lines if line.start is not None]
        if len(timed) == len(lines):  # every line carries its own start (synced lyrics)
            return [
                (max(0.0, start - cfg.line_pad_seconds),
                 min(seconds, (line.end if line.end is not None else start + cfg.max_line_seconds)
                     + cfg.line_pad_seconds))
                for line, start in timed
            ]
        log_probs = emissions(model, audio, cfg.chunk_seconds, self.device)
        return line_windows([line.text for line in lines], log_probs, metadata["dictionary"], seconds)

    def _align_lines(self, lines: tuple[LyricLine, ...], windows: list[tuple[float, float] | None],
                     model: torch.nn.Module, metadata: dict, audio: torch.Tensor) -> list[AlignedLine]:
        """WhisperX word alignment inside each line's window, one line at a time.

        One call per line, because WhisperX may split a segment into sentences: all words it returns
        for the call belong to that line. Words without times (digits, symbols) stay in the line's text.
        """
        samples = audio.numpy()
        out = []
        for index, (line, window) in enumerate(zip(lines, windows, strict=False)):
            words: list[Word] = []
            if window is not None:
                segment = {"text": line.text, "start": window[0], "end": window[1]}
                result = whisperx.align([segment], model, metadata, samples, str(self.device))
                words = [
                    Word(word=w["word"], start=float(w["start"]), end=float(w["end"]),
                         score=round(float(w.get("score", 0.0)), 4))
                    for seg in result["segments"] for w in seg.get("words", [])
                    if _finite(w.get("start")) and _finite(w.get("end"))
                ]
            out.append(AlignedLine(
                index=index, text=line.text, start=words[0].start if words else None,
                end=words[-1].end if words else None, words=tuple(words),
                score=round(float(np.mean([w.score for w in words])), 4) if words else None,
            ))
        return out


def _has_punkt(language: str) -> bool:
    try:
        nltk.data.find(f"tokenizers/punkt_tab/{language}/")
    except LookupError:
        return False
    return True


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
