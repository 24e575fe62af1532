"""A small dataset version of real synthetic-song clips, written straight into the version format that
``open_dataset`` reads (for trainer tests that must not wait for a whole pipeline run)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as taf

from songcorpus.models.bestrq import Tokenizer
from songcorpus.stages.tokenize import load_tokenizer
from songcorpus.synth.corpus import make_corpus

VERSION_ID = "5a11c0de5a11c0de"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _flac(audio: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, audio.T, rate, format="FLAC", subtype="PCM_16")
    return out.getvalue()


def _token_members(tokenizer: Tokenizer, parts: dict[str, np.ndarray], rate: int) -> dict[str, bytes]:
    """The clip's token arrays as the tokenize stage writes them (song = the mix), as .npy bytes."""
    out = {}
    for stream, member in (("song", "mix"), ("vocals", "vocals"), ("accomp", "accomp")):
        mono = taf.resample(torch.from_numpy(parts[member].mean(axis=0)), rate, tokenizer.bestrq.config.sample_rate)
        tokens, _ = tokenizer(mono[None], torch.tensor([mono.numel()]))
        buffer = io.BytesIO()
        np.save(buffer, tokens[0].numpy().astype(np.uint16))
        out[stream] = buffer.getvalue()
    return out


def build_song_version(root: Path, songs: int = 3, seed: int = 7, tokenizer: Path | None = None) -> str:
    """Synthetic songs cut into one clip per sung line (the last song is the test split); returns the id. With
    ``tokenizer`` (an artifact folder), every clip also gets its token arrays and the manifest its tokens."""
    model = load_tokenizer(tokenizer) if tokenizer is not None else None
    corpus = root / "corpus"
    make_corpus(corpus, songs, seed=seed, min_seconds=10.0, max_seconds=12.0, formats=("flac",), workers=1)
    shards_dir = root / "versions" / VERSION_ID / "shards"
    shards_dir.mkdir(parents=True)
    shards, counts = [], {"train": 0, "test": 0}
    for index, truth_file in enumerate(sorted((corpus / "truth").glob("*.json"))):
        truth = json.loads(truth_file.read_text())
        split = "test" if index == songs - 1 else "train"
        stems = {name: sf.read(corpus / truth["paths"][name], dtype="float32", always_2d=True)[0].T
                 for name in ("vocals", "accomp")}
        rate = truth["sample_rate"]
        name = f"songs-{split}-{index:06d}.tar"
        with tarfile.open(shards_dir / name, "w") as tar:
            for n, line in enumerate(truth["lines"]):
                key = f"{truth['key']}-{n:04d}"
                a, b = round(line["start"] * rate), round(line["end"] * rate)
                parts = {"vocals": stems["vocals"][:, a:b], "accomp": stems["accomp"][:, a:b]}
                parts["mix"] = parts["vocals"] + parts["accomp"]
                meta = {"clip_id": key, "split": split, "lyrics": line["text"], "duration": (b - a) / rate}
                _add(tar, f"{key}.json", json.dumps(meta).encode())
                for member, audio in parts.items():
                    _add(tar, f"{key}.{member}.flac", _flac(audio, rate))
                if model is not None:
                    for stream, data in _token_members(model, parts, rate).items():
                        _add(tar, f"{key}.{stream}.npy", data)
                counts[split] += 1
        shards.append({"name": name, "split": split, "samples": len(truth["lines"])})
    manifest = {"id": VERSION_ID, "dataset": "songs", "shards": shards,
                "splits": {"samples": counts, "fractions": {"train": 0.8, "test": 0.2}}}
    if model is not None and tokenizer is not None:
        manifest["tokens"] = {"tokenizer": tokenizer.name, "codes": model.semantic.centroids.shape[0],
                              "rate": model.bestrq.config.frame_rate}
    (root / "versions" / VERSION_ID / "manifest.json").write_text(json.dumps(manifest))
    (root / "versions" / "LATEST").write_text(VERSION_ID)
    return VERSION_ID
