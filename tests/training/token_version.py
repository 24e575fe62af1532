"""A dataset version of clips with lyrics and token arrays only (no audio), written straight into the version
format, for DSLM tests. The tokens are learnable from the lyrics and from each other: the vocals stream spells
the lyric characters over time, the accompaniment repeats a riff that depends on the clip, and the song token is
a function of both."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

VERSION_ID = "70ce2500de5a11c0"
CODES = 64
LINES = ("la la love", "oh my heart", "sing it again", "under the moon", "hold me now", "dance all night",
         "rain on me", "we are young")


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array.astype(np.uint16))
    return out.getvalue()


def clip_tokens(lyrics: str, index: int, steps: int) -> dict[str, np.ndarray]:
    """The three streams of a clip: vocals spell the lyrics, the accompaniment is riff ``index % 3``."""
    letters = np.array([ord(c) % 24 for c in lyrics])
    vocals = letters[np.arange(steps) * len(letters) // steps]
    riff = np.array([[30, 31, 32, 33], [40, 42, 40, 44], [50, 50, 51, 51]][index % 3])
    accompaniment = riff[(np.arange(steps) // 2) % 4]
    song = (vocals + accompaniment) % CODES
    return {"vocals": vocals, "accomp": accompaniment, "song": song}


def build_token_version(root: Path, train_clips: int = 6, test_clips: int = 2, steps: int = 24) -> str:
    """``train_clips`` + ``test_clips`` clips of ``steps`` tokens (20 Hz) under ``root/versions``; returns the id."""
    shards_dir = root / "versions" / VERSION_ID / "shards"
    shards_dir.mkdir(parents=True)
    shards = []
    for split, first, count in (("train", 0, train_clips), ("test", train_clips, test_clips)):
        name = f"tokens-{split}-000000.tar"
        with tarfile.open(shards_dir / name, "w") as tar:
            for index in range(first, first + count):
                key, lyrics = f"song{index:03d}-0000", LINES[index % len(LINES)]
                meta = {"clip_id": key, "split": split, "lyrics": lyrics, "duration": steps / 20}
                _add(tar, f"{key}.json", json.dumps(meta).encode())
                for stream, tokens in clip_tokens(lyrics, index, steps).items():
                    _add(tar, f"{key}.{stream}.npy", _npy(tokens))
        shards.append({"name": name, "split": split, "samples": count})
    manifest = {"id": VERSION_ID, "dataset": "tokens", "shards": shards,
                "splits": {"samples": {"train": train_clips, "test": test_clips}},
                "tokens": {"tokenizer": "0123456789abcdef", "codes": CODES, "rate": 20.0}}
    (root / "versions" / VERSION_ID / "manifest.json").write_text(json.dumps(manifest))
    (root / "versions" / "LATEST").write_text(VERSION_ID)
    return VERSION_ID
