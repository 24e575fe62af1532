"""Turn a job's input (manifest, folder, or synthetic corpus) into ingest rows.

Only light work happens here, on the driver: reading the manifest and one ``stat`` per file for
the ingest fingerprint. Hashing and probing happen in the ingest workers.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq

from ..pipeline.fingerprint import digest
from ..pipeline.stage import Source
from ..pipeline.storage import Storage, resolve_filesystem
from ..schemas.job import InputSpec
from ..schemas.stage_configs import AUDIO_EXTENSIONS

log = logging.getLogger(__name__)

#: Manifest columns ingest understands; any other column is kept as extra metadata.
KNOWN_COLUMNS = ("audio_path", "lyrics_path", "lyrics", "song_id", "title", "artist", "group", "language")
LYRICS_SIDECARS = (".lrc", ".txt")


def read_manifest(path: str) -> pa.Table:
    """Read a Parquet, CSV or JSON-lines manifest (chosen by extension)."""
    fs, inner = resolve_filesystem(path)
    suffix = Path(inner).suffix.lower()
    with fs.open_input_file(inner) as f:
        if suffix == ".parquet":
            table = pq.read_table(f)
        elif suffix == ".csv":
            table = pacsv.read_csv(f, convert_options=pacsv.ConvertOptions(strings_can_be_null=True))
        elif suffix in (".jsonl", ".ndjson", ".json"):
            table = pajson.read_json(f)
        else:
            raise ValueError(f"manifest {path}: unsupported extension {suffix!r}; use .parquet, .csv or .jsonl")
    if "audio_path" not in table.column_names:
        raise ValueError(f"manifest {path}: missing required column 'audio_path' (has {table.column_names})")
    return table


def scan_directory(directory: str, extensions: tuple[str, ...] = AUDIO_EXTENSIONS) -> pa.Table:
    """Audio files under ``directory`` with a sidecar ``.lrc`` (preferred) or ``.txt`` of the same stem."""
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"input directory not found: {directory}")
    rows = []
    for audio in sorted(p for p in root.rglob("*") if p.suffix.lower() in extensions and p.is_file()):
        sidecar = next((audio.with_suffix(s) for s in LYRICS_SIDECARS if audio.with_suffix(s).exists()), None)
        rows.append(
            {
                "audio_path": audio.relative_to(root).as_posix(),
                "lyrics_path": sidecar.relative_to(root).as_posix() if sidecar else None,
            }
        )
    return pa.Table.from_pylist(rows, schema=pa.schema([("audio_path", pa.string()), ("lyrics_path", pa.string())]))


def _clean(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _stat(base: str, rel: object) -> list:
    """(size, mtime_ns) of an input file, or None; part of the ingest fingerprint."""
    if not rel:
        return [None, None]
    if not isinstance(rel, str):
        raise ValueError(f"manifest path {rel!r} must be text, got {type(rel).__name__}")
    fs, inner = resolve_filesystem(rel if "://" in rel else str(Path(base, rel)))
    info = fs.get_file_info(inner)
    if info.type != pafs.FileType.File:
        return [None, None]
    return [info.size, info.mtime_ns]


def manifest_rows(table: pa.Table, base: str) -> list[dict]:
    """Ingest rows: a record per manifest row and a fingerprint of the row plus its files' stat."""
    rows = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(table.to_pylist()):
        row = {k: _clean(v) for k, v in raw.items()}
        extra = {k: (None if v is None else str(v)) for k, v in row.items() if k not in KNOWN_COLUMNS}
        record = {k: row.get(k) for k in KNOWN_COLUMNS}
        record["extra"] = extra
        key = str(record["song_id"] or record["audio_path"] or f"row-{index}")
        seen[key] = seen.get(key, 0) + 1
        item_id = key if seen[key] == 1 else f"{key}#{seen[key]}"
        stat = [_stat(base, record["audio_path"]), _stat(base, record["lyrics_path"])]
        fingerprint = digest({"item": item_id, "row": record, "stat": stat})
        rows.append({"item_id": item_id, "fingerprint": fingerprint, "record": {**record, "row_index": index}})
    return rows


def read_input(job_input: InputSpec, storage: Storage) -> Source:
    """The ingest source for a job, generating the synthetic corpus first when asked to."""
    notices: list[str] = []
    if job_input.synth is not None:
        if not storage.is_local:
            raise ValueError("input.synth needs a local output root; generate with `songcorpus synth` instead")
        from ..synth.corpus import make_corpus

        spec = job_input.synth
        out = Path(storage.full("synth"))
        manifest_path = out / "manifest.parquet"
        params = json.dumps(spec.model_dump(), sort_keys=True)
        marker = out / "synth-params.json"
        if not (manifest_path.exists() and marker.exists() and marker.read_text() == params):
            make_corpus(
                out, spec.songs, seed=spec.seed, min_seconds=spec.min_seconds, max_seconds=spec.max_seconds,
                languages=spec.languages,
            )
            storage.write_bytes("synth/synth-params.json", params.encode())
        notices.append(f"input is a synthetic corpus of {spec.songs} songs (seed {spec.seed})")
        table, base = read_manifest(str(manifest_path)), str(out)
    elif job_input.manifest is not None:
        table = read_manifest(job_input.manifest)
        base = job_input.base_dir or str(Path(job_input.manifest).resolve().parent)
    else:
        assert job_input.directory is not None
        table = scan_directory(job_input.directory)
        base = job_input.base_dir or str(Path(job_input.directory).resolve())
    if "://" not in base:
        base = str(Path(base).resolve())
    return Source(rows=manifest_rows(table, base), input_base=base, notices=notices)
