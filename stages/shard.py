"""shard: kept clips -> WebDataset shards -> an immutable, verifiable dataset version.

Per song (in parallel): each clip's members are cut (``json`` with lyrics, word timings relative to
the clip and lineage; FLAC of the mixture and stems) into a per-song fragment tar. On the driver,
once every song is done: clips are sorted by (split, clip id), packed into shards by size and count,
and published as a version (see ``pipeline.versions``). Sorting before packing is what makes shard
membership and bytes independent of how Ray scheduled the work.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter

import numpy as np
import pyarrow as pa
import ray

from ..pipeline.dataset_reader import TOKEN_MEMBERS
from ..pipeline.errors import UserError
from ..pipeline.shards import Sample, ShardSpec, assemble_shards, write_shard
from ..pipeline.stage import BarrierStage, Result
from ..pipeline.storage import artifact_path
from ..pipeline.versions import LATEST, publish, shard_entries
from ..schemas.records import OK, Outcome
from ..schemas.sample import SampleJson
from ..schemas.song_records import Clip, FilteredSong, KeptClips, SampleEntry, ShardedSong, TokenizedSong
from ..schemas.stage_configs import ShardConfig
from .audio_io import encode_flac, read_flac
from .datacard import render_datacard

AUDIO_SOURCES = {"mix": "audio", "vocals": "vocals", "accomp": "accomp"}


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def split_of(group: str, splits: dict[str, float]) -> str:
    """The split of a group: a stable hash of the key, so adding songs never moves an existing one."""
    point = int(hashlib.sha256(group.encode("utf-8")).hexdigest()[:12], 16) / 16**12
    total = 0.0
    for name, fraction in splits.items():
        total += fraction
        if point < total:
            return name
    return list(splits)[-1]


class NothingToPublishError(UserError):
    """A run that would publish a version without a single clip."""


class ShardStage(BarrierStage[ShardConfig]):
    """Songs with kept clips in; a dataset version out (published when the whole run is done)."""

    name = "shard"
    # 2: sample JSON per schemas/sample.py (schema_version, word timings keyed "word", ms times)
    # 3: token members song.npy, vocals.npy, accomp.npy when the songs come from tokenize
    # 4: the tokenizer, its codebook size and token rate in the record and the version manifest ("tokens")
    version = 4

    def process(self, item_id: str, record: dict, fingerprint: str) -> Result:
        song = (TokenizedSong if "tokens" in record else FilteredSong).model_validate(record)
        storage = self.context.storage
        clips = KeptClips.model_validate_json(storage.read_bytes(song.kept_clips)).clips
        audio = {m: read_flac(storage.read_bytes(getattr(song, AUDIO_SOURCES[m]))) for m in self.config.audio_members}
        tokens = np.load(io.BytesIO(storage.read_bytes(song.tokens))) if isinstance(song, TokenizedSong) else None
        split = split_of(song.group, self.config.splits)
        samples: list[Sample] = []
        index = []
        for clip in clips:
            sample_json = json.dumps(self._sample_json(song, clip, split).model_dump(mode="json"), ensure_ascii=False,
                                     sort_keys=True)
            members = [("json", sample_json.encode())]
            for member, (signal, rate) in audio.items():
                piece = signal[:, round(clip.start * rate) : round(clip.end * rate)]
                members.append((f"{member}.flac", encode_flac(piece, rate)))
            if tokens is not None:
                members += [(f"{stream}.npy", _npy(tokens[f"{clip.clip_id}.{stream}"])) for stream in TOKEN_MEMBERS]
            samples.append((clip.clip_id, members))
            sha = hashlib.sha256(b"".join(data for _, data in members)).hexdigest()
            index.append(SampleEntry(key=clip.clip_id, seconds=clip.duration, sha256=sha,
                                     bytes=sum(len(d) for _, d in members)))
        rel = artifact_path(self.name, fingerprint, "samples.tar")
        write_shard(storage, rel, split, [(s, 0.0) for s in samples])
        token_info = ({"tokenizer": song.tokenizer, "token_codes": song.token_codes, "token_rate": song.token_rate}
                      if isinstance(song, TokenizedSong) else {})
        out = ShardedSong(song_id=song.song_id, split=split, fragment=rel, samples=tuple(index),
                          language=song.language, lineage=song.lineage, **token_info)
        return Result(out.model_dump(mode="json"), audio_seconds=sum(i.seconds for i in index))

    def _sample_json(self, song: FilteredSong, clip: Clip, split: str) -> SampleJson:
        return SampleJson(
            clip_id=clip.clip_id, song_id=song.song_id, group=song.group, language=song.language,
            title=song.title, artist=song.artist, split=split, start=clip.start, end=clip.end,
            duration=clip.duration, sample_rate=song.sample_rate, lyrics=clip.text, words=clip.words,
            instrumental=clip.instrumental, stem_scale=song.stem_scale, lineage=song.lineage,
        )

    def finalize(self, outcomes: list[Outcome]) -> list[Outcome]:
        """Pack every song's samples into shards in (split, clip id) order and publish the version.

        Membership is fixed here, on the driver; the shards are then written in parallel (Ray
        tasks), each from its songs' fragments, so the bytes do not depend on who wrote them.
        """
        cfg, storage, job = self.config, self.context.storage, self.context.job or {}
        dataset = job.get("name", "dataset")
        rows = sorted(
            ((list(cfg.splits).index(o.record["split"]), s["key"], o.record, s)
             for o in outcomes if o.status == OK and o.record is not None for s in o.record["samples"]),
            key=lambda r: (r[0], r[1]),
        )
        if not rows and not cfg.publish_empty:
            rejected = sum(o.status != OK for o in outcomes)
            raise NothingToPublishError(
                f"no clip reached shard ({len(outcomes)} songs in, {rejected} rejected; the report says why): no "
                "version is published and versions/LATEST stays as it was. To publish an empty version all the "
                "same, set stages.shard.publish_empty = true")
        staging = f"versions/.staging-{self.context.run_id}"
        specs, index = [], []
        for split in cfg.splits:
            in_split = [r for r in rows if r[2]["split"] == split]
            for number, group in enumerate(self._pack(in_split)):
                name = f"{dataset}-{split}-{number:06d}.tar"
                specs.append(ShardSpec(f"{staging}/{name}", split, tuple(
                    (record["fragment"], entry["key"], entry["seconds"]) for _, _, record, entry in group)))
                index += [{"key": e["key"], "song_id": r["song_id"], "split": split, "shard": name,
                           "sha256": e["sha256"], "seconds": e["seconds"]} for _, _, r, e in group]
        shards = assemble_shards(storage, specs, parallel=ray.is_initialized())
        content = self._content(dataset, shards, rows, job)
        card = render_datacard(content, [r[3]["seconds"] for r in rows], self.context.notices)
        version_id, _ = publish(storage, staging, content, pa.Table.from_pylist(index), card, self.context.run_id)
        storage.write_bytes(LATEST, version_id.encode())
        return outcomes

    def _pack(self, rows: list) -> list[list]:
        groups: list[list] = []
        current: list = []
        size = 0
        for row in rows:
            if current and (len(current) >= self.config.target_shard_samples
                            or size >= self.config.target_shard_bytes):
                groups.append(current)
                current, size = [], 0
            current.append(row)
            size += row[3]["bytes"]
        return groups + ([current] if current else [])

    def _content(self, dataset: str, shards: list, rows: list, job: dict) -> dict:
        per_split = Counter(r[2]["split"] for r in rows)
        seconds: Counter = Counter()
        for r in rows:
            seconds[r[2]["split"]] += r[3]["seconds"]
        return {
            "dataset": dataset,
            "shards": shard_entries(shards),
            "splits": {"key": "group (artist/work when given, else song)", "fractions": self.config.splits,
                       "samples": dict(per_split), "seconds": {k: round(v, 3) for k, v in seconds.items()}},
            "stages": self.context.stage_identities,
            # only what changes the data: the same job gives the same id on a laptop, a cluster, another checkout
            "job": job,
            "rejects": self.context.rejects,
            "languages": dict(Counter(r[2].get("language") or "unknown" for r in rows)),
            **self._tokens(rows),
        }

    @staticmethod
    def _tokens(rows: list) -> dict:
        """``{"tokens": {tokenizer, codes, rate}}`` when the samples carry tokens (one tokenizer per version)."""
        found = {(r[2].get("tokenizer"), r[2].get("token_codes"), r[2].get("token_rate")) for r in rows}
        found.discard((None, None, None))
        if not found:
            return {}
        if len(found) > 1:
            raise ValueError(f"the songs of one version were tokenized by different tokenizers: {sorted(found)}")
        tokenizer, codes, rate = found.pop()
        return {"tokens": {"tokenizer": tokenizer, "codes": codes, "rate": rate}}
