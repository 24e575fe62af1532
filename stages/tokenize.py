"""tokenize: semantic tokens of every kept clip's mixture, vocals and accompaniment (BEST-RQ + k-means).

Between ``filter`` and ``shard``, and optional: a job without it publishes audio-only shards. The tokenizer is
a model artifact (``songcorpus train`` publishes it); its files' hash is the stage's weights hash, so a new
tokenizer re-tokenizes and re-shards and touches nothing upstream. ``tokenizer = "latest"`` takes the newest
one under the job's root, and when there is none yet the run goes on without tokens and says so: the demo
runs, trains its tokenizer on the version it published, and runs again.

The clips of every stream of every song in a worker's batch (``resources.batch_size`` songs) are cut from the
stems, turned to 24 kHz mono, sorted by length together and tokenized ``batch_clips`` at a time (autocast on
GPU), then each song's tokens are written on their own. ``tokens.npz`` holds one array per clip and stream,
uint16 (uint32 when the codebook has more than 65536 codes), ``round(seconds × 50)`` tokens long within one.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
import torchaudio.functional as taf
from safetensors.torch import load_file

from ..models.bestrq import BestRqConfig, Tokenizer
from ..pipeline.dataset_reader import TOKEN_MEMBERS
from ..pipeline.model_registry import artifact_dir, list_models, load_model, local_folder, resolve_model
from ..pipeline.stage import BatchStage, Result
from ..pipeline.storage import Storage, artifact_path
from ..schemas.model_artifact import ARTIFACT_FILE, TOKENIZER_CONFIG, TOKENIZER_WEIGHTS
from ..schemas.records import OK
from ..schemas.song_records import Clip, FilteredSong, KeptClips, TokenizedSong
from ..schemas.stage_configs import TokenizeConfig
from .audio_io import read_flac_span
from .devices import SideBySide, stage_device, worker_threads
from .model_provenance import trained_model_notice

TOKENS = "tokens.npz"
LATEST = "latest"
#: the stream name in the shards (``TOKEN_MEMBERS``) -> the record field holding its audio
STREAMS = dict(zip(TOKEN_MEMBERS, ("audio", "vocals", "accomp"), strict=True))


def load_tokenizer(folder: Path) -> Tokenizer:
    """A tokenizer artifact's ``Tokenizer`` (eval mode), from its config and safetensors weights."""
    spec = json.loads((folder / TOKENIZER_CONFIG).read_text())
    tokenizer = Tokenizer(BestRqConfig.from_dict(spec["bestrq"]), spec["layer"], spec["codes"],
                          spec.get("projection_dim"))
    tokenizer.load_state_dict(load_file(folder / TOKENIZER_WEIGHTS))
    return tokenizer


def _newest_tokenizer(storage: Storage) -> Path | None:
    if not storage.is_local or not list_models(storage, "tokenizer"):
        return None
    return local_folder(storage, resolve_model(storage, "tokenizer/latest"))


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``np.savez`` output with fixed member times, so the same tokens give the same bytes (``np.load`` reads it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.save(member, array, allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy"), member.getvalue())
    return buffer.getvalue()


def token_dtype(codes: int) -> type[np.unsignedinteger]:
    return np.uint16 if codes <= 65536 else np.uint32


class TokenizeStage(BatchStage[TokenizeConfig]):
    """Songs with kept clips in; the same songs with a ``tokens.npz`` of every clip's three streams out."""

    name = "tokenize"
    version = 1

    @classmethod
    def skip_reason(cls, config: TokenizeConfig, storage: Storage) -> str | None:  # type: ignore[override]
        if config.tokenizer == LATEST and _newest_tokenizer(storage) is None:
            return (f"no tokenizer under {storage.root}/models/tokenizer yet (tokenizer = 'latest'): the shards carry "
                    "no tokens; `songcorpus train JOB` trains one, and the next run tokenizes")
        return None

    def _folder(self) -> Path:
        if self.config.tokenizer == LATEST:
            newest = _newest_tokenizer(self.context.storage)
            if newest is None:
                raise ValueError("stages.tokenize: no tokenizer under the job's root; run `songcorpus train` first")
            return newest
        folder = Path(self.config.tokenizer)
        if not (folder / TOKENIZER_WEIGHTS).is_file():
            raise ValueError(f"stages.tokenize.tokenizer: {folder} holds no {TOKENIZER_WEIGHTS} (a tokenizer "
                             "artifact folder, ROOT/models/tokenizer/<id>, is what `songcorpus train` publishes)")
        return folder

    def weights_hash(self) -> str:
        """The tokenizer's files: a new tokenizer re-tokenizes."""
        folder, h = self._folder(), hashlib.sha256()
        for name in (TOKENIZER_CONFIG, TOKENIZER_WEIGHTS):
            h.update((folder / name).read_bytes())
        return h.hexdigest()[:32]

    def notices(self) -> list[str]:
        notice = trained_model_notice(self.name, self._folder())
        return [notice] if notice else []

    def setup(self) -> None:
        cfg = self.config
        self.device = stage_device(self.name, cfg.device)
        threads = worker_threads(cfg.cpu_threads, self.context.cpus)
        # on a CPU each clip is tokenized alone on one thread, clips side by side: the same tokens whatever
        # the CPUs and whichever clips share a batch; on a GPU, clips of similar length go through together
        self.cpu_forwards = SideBySide(threads) if self.device.type == "cpu" else None
        if self.cpu_forwards is None:
            torch.set_num_threads(threads)
        self.folder = self._folder()
        self.tokenizer = load_tokenizer(self.folder).to(self.device)
        self.rate = self.tokenizer.bestrq.config.sample_rate
        self.codes = int(self.tokenizer.semantic.centroids.shape[0])
        self.autocast = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        self._tokens([torch.zeros(self.rate)])  # the first forward's one-time costs belong to setup, not a song

    def _clip_audio(self, flac: bytes, clip: Clip) -> torch.Tensor:
        """The clip's span of a stem, decoded alone, as mono at the tokenizer's rate."""
        audio, rate = read_flac_span(flac, clip.start, clip.end)
        return taf.resample(torch.from_numpy(audio.mean(axis=0)), rate, self.rate)

    def _tokens(self, clips: list[torch.Tensor]) -> list[np.ndarray]:
        """Tokens of each clip: one clip per forward on a CPU, else batched by length (longest first)."""
        order = sorted(range(len(clips)), key=lambda i: -clips[i].numel())
        if self.cpu_forwards is not None:
            chunks = [[i] for i in order]
        else:
            chunks = [order[s : s + self.config.batch_clips] for s in range(0, len(order), self.config.batch_clips)]
        def forward(chunk: list[int]) -> list[np.ndarray]:
            return self._forward([clips[i] for i in chunk])

        done = self.cpu_forwards.map(forward, chunks) if self.cpu_forwards else [forward(c) for c in chunks]
        out: list[np.ndarray] = [np.zeros(0)] * len(clips)
        for chunk, tokens in zip(chunks, done, strict=True):
            for i, values in zip(chunk, tokens, strict=True):
                out[i] = values
        return out

    def _forward(self, clips: list[torch.Tensor]) -> list[np.ndarray]:
        """One forward over ``clips``, zero-padded to the longest; each clip's tokens cut to its own frames."""
        lengths = torch.tensor([clip.numel() for clip in clips])
        batch = torch.zeros(len(clips), int(lengths.max()))
        for row, clip in enumerate(clips):
            batch[row, : clip.numel()] = clip
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.autocast or torch.float32,
                                             enabled=self.autocast is not None and self.device.type == "cuda"):
            tokens, frames = self.tokenizer(batch.to(self.device), lengths.to(self.device))
        return [tokens[row, : int(frames[row])].cpu().numpy().astype(token_dtype(self.codes))
                for row in range(len(clips))]

    def process_batch(self, items: list[tuple[str, dict, str]]) -> list[Result | BaseException]:
        """Tokenize the clips of every song of the batch together (length-sorted batches across songs), then
        write each song's ``tokens.npz``; a song that cannot be read is that song's rejection alone."""
        storage = self.context.storage
        songs: dict[int, tuple[FilteredSong, tuple[Clip, ...]]] = {}
        pieces: list[tuple[int, str, torch.Tensor]] = []  # (song, "<clip_id>.<stream>", 24 kHz mono)
        results: dict[int, Result | BaseException] = {}
        for index, (_, record, _) in enumerate(items):
            try:
                with self.timed("decode"):
                    song = FilteredSong.model_validate(record)
                    clips = KeptClips.model_validate_json(storage.read_bytes(song.kept_clips)).clips
                    for stream, field in STREAMS.items():
                        data = storage.read_bytes(getattr(song, field))
                        pieces += [(index, f"{c.clip_id}.{stream}", self._clip_audio(data, c)) for c in clips]
                songs[index] = (song, clips)
            except Exception as exc:  # noqa: BLE001 - becomes this song's rejection
                results[index] = exc
                pieces = [p for p in pieces if p[0] != index]
        with self.timed("tokenize"):
            tokens = self._tokens([audio for _, _, audio in pieces])
        arrays: dict[int, dict[str, np.ndarray]] = {index: {} for index in songs}
        for (index, name, _), values in zip(pieces, tokens, strict=True):
            arrays[index][name] = values
        for index, (song, _) in songs.items():
            with self.timed("write"):
                rel = storage.write_bytes(artifact_path(self.name, items[index][2], TOKENS), npz_bytes(arrays[index]))
            out = TokenizedSong.extending(song, tokens=rel, token_rate=self.tokenizer.bestrq.config.frame_rate,
                                          token_codes=self.codes, tokenizer=self.folder.name)
            results[index] = Result(out.model_dump(mode="json"), audio_seconds=song.clip_seconds)
        return [results[i] for i in range(len(items))]

    @classmethod
    def report_section(cls, rows: pa.Table, storage: Storage) -> dict | None:
        records = [TokenizedSong.model_validate_json(r) for r, status in
                   zip(rows["record"].to_pylist(), rows["status"].to_pylist(), strict=True) if status == OK and r]
        if not records:
            return None
        lines = [(f"{len(records)} songs, {sum(r.clip_count for r in records)} clips, "
                  f"{sum(r.clip_seconds for r in records) / 3600:.3f} h tokenized (song, vocals, accompaniment) "
                  f"at {records[0].token_rate:g} Hz")]
        for tokenizer in sorted({r.tokenizer for r in records}):
            folder = artifact_dir("tokenizer", tokenizer)
            metrics = load_model(storage, folder).metrics if storage.exists(f"{folder}/{ARTIFACT_FILE}") else {}
            held_out = (f"held-out masked accuracy {metrics['masked_accuracy']:.3f} (chance "
                        f"{metrics['chance_accuracy']:.4f}), semantic codes used {metrics['tokens_usage']['used']} "
                        f"of {records[0].token_codes}") if "masked_accuracy" in metrics else "no held-out metrics"
            lines.append(f"tokenizer {tokenizer}: {held_out}")
        return {"title": "tokenize: tokens", "lines": lines}
