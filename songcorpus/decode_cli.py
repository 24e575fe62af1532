"""``songcorpus decode``: semantic tokens -> audio files, through an LDM artifact and its VAE, batched.

The tokens come from an ``.npz`` of 1-D integer arrays (what ``songcorpus evaluate`` samples into
``generated.npz``) or from a dataset version's clips. Each array becomes ``<key>.flac`` (mono, the VAE's rate)
under ``ROOT/decoded/<ldm id>-<source>/``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import numpy as np

DECODED = "decoded"
SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
STREAM_MEMBERS = {"song": "song_tokens", "vocals": "vocals_tokens", "accompaniment": "accomp_tokens"}


def _npz_tokens(path: Path) -> dict[str, np.ndarray]:
    from .pipeline.errors import UserError

    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read token arrays from {path}: {exc}") from exc


def _version_tokens(root: str, version: str, split: str, stream: str, clips: int) -> tuple[dict[str, np.ndarray], str]:
    from .pipeline.dataset_reader import open_dataset, resolve_version

    version_dir, manifest = resolve_version(version, root)
    out: dict[str, np.ndarray] = {}
    for sample in open_dataset(version_dir, split, audio=(), tokens=True, epoch_shuffle=False):
        if len(out) == clips:
            break
        out[f"{sample['key']}.{stream}"] = np.asarray(sample[STREAM_MEMBERS[stream]])
    return out, f"{manifest['id']}-{split}-{stream}"


def checked(tokens: dict[str, np.ndarray], codes: int) -> dict[str, np.ndarray]:
    """``tokens`` if every key is a safe file name and every array a non-empty 1-D run of ids below ``codes``."""
    from .pipeline.errors import UserError

    if not tokens:
        raise UserError("no token arrays to decode")
    for key, values in tokens.items():
        if not SAFE_KEY.match(key):
            raise UserError(f"token array name {key!r} cannot be a file name (letters, digits, '.', '_', '-')")
        if values.ndim != 1 or not len(values) or not np.issubdtype(values.dtype, np.integer):
            raise UserError(f"{key}: expected a non-empty 1-D integer array, got {values.dtype} {values.shape}")
        if int(values.min()) < 0 or int(values.max()) >= codes:
            raise UserError(f"{key}: token ids must lie in 0..{codes - 1} (the LDM's codebook); got "
                            f"{int(values.min())}..{int(values.max())}")
    return tokens


def _cmd_decode(args: argparse.Namespace) -> int:
    from .pipeline.errors import UserError
    from .pipeline.storage import Storage
    from .stages.audio_io import encode_flac
    from .training.ldm import load_decoder

    storage = Storage(args.root)
    decoder, artifact = load_decoder(storage, args.model)
    if args.tokens:
        tokens, source = _npz_tokens(args.tokens), args.tokens.stem
    elif args.version:
        tokens, source = _version_tokens(args.root, args.version, args.split, args.stream, args.clips)
    else:
        raise UserError("say what to decode: --tokens FILE.npz, or --version ID (with --split, --stream, --clips)")
    tokens = checked(tokens, decoder.ldm.config.codes)
    audio = decoder.decode(list(tokens.values()), args.steps, args.guidance, args.seed, args.batch_size)
    folder = f"{DECODED}/{artifact.id}-{source}"
    for key, waveform in zip(tokens, audio, strict=True):
        storage.write_bytes(f"{folder}/{key}.flac", encode_flac(waveform[None].numpy(), decoder.sample_rate))
    seconds = sum(a.numel() for a in audio) / decoder.sample_rate
    print(f"ldm/{artifact.id}: {len(audio)} sequences, {seconds:.1f} s of audio ({args.steps} Euler steps, guidance "
          f"{args.guidance}) in {storage.uri(folder)}/")
    return 0


def add_decode_parser(sub: Any) -> None:
    p = sub.add_parser(
        "decode", help="semantic tokens -> audio files through an LDM and its VAE",
        description="Decode token sequences to audio with an LDM artifact (and the VAE it was trained on), in "
        "batches: the arrays of an .npz (e.g. the generated.npz that `songcorpus evaluate` writes), or the tokens "
        "of a dataset version's clips. Writes one FLAC per sequence under ROOT/decoded/<ldm id>-<source>/.")
    p.add_argument("model", help="LDM artifact: ID, ldm/ID, an id prefix, or ldm/latest")
    p.add_argument("--root", required=True, help="output root that holds the models")
    p.add_argument("--tokens", type=Path, help=".npz of 1-D token arrays, one file per array name")
    p.add_argument("--version", help="or: a dataset version (id, prefix or latest) whose clips' tokens to decode")
    p.add_argument("--split", default="test", help="with --version: the split (default: test)")
    p.add_argument("--stream", choices=sorted(STREAM_MEMBERS), default="song", help="with --version (default: song)")
    p.add_argument("--clips", type=int, default=4, help="with --version: how many clips (default: 4)")
    p.add_argument("--steps", type=int, default=20, help="Euler steps (default: 20)")
    p.add_argument("--guidance", type=float, default=2.0, help="classifier-free guidance (default: 2.0)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.set_defaults(func=_cmd_decode)
