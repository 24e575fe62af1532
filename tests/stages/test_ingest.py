"""ingest on a CSV manifest: the record it hands on is a valid IngestedSong whatever types the CSV reader guessed."""

from __future__ import annotations

import soundfile as sf

from songcorpus.pipeline.stage import StageContext
from songcorpus.pipeline.storage import Storage
from songcorpus.schemas.song_records import IngestedSong
from songcorpus.schemas.stage_configs import IngestConfig
from songcorpus.stages.ingest import IngestStage
from songcorpus.stages.sources import manifest_rows, read_manifest
from tests.songtools import tone, write_manifest


def test_all_digit_text_columns_are_recorded_as_text(tmp_path):
    sf.write(tmp_path / "a.wav", tone(1.0, 440), 44100)
    manifest = write_manifest(tmp_path / "m.csv", [
        {"audio_path": "a.wav", "lyrics": "la la", "artist": "311", "title": "1999", "language": "en"},
    ])
    (row,) = manifest_rows(read_manifest(str(manifest)), str(tmp_path))
    assert row["record"]["artist"] == 311  # what pyarrow's CSV reader makes of the column
    stage = IngestStage(IngestConfig(), StageContext(Storage(str(tmp_path / "out")), input_base=str(tmp_path)))
    song = IngestedSong.model_validate(stage.process(row["item_id"], row["record"], row["fingerprint"]).record)
    assert (song.artist, song.title, song.group, song.language) == ("311", "1999", "311", "en")
    assert song.lyrics_format == "text" and song.source_channels == 2 and song.song_id.startswith("s")
