import pytest

from songcorpus.pipeline.jobfile import JobSpecError, parse_job

VALID = """
name = "demo"
root = "/tmp/out"
[input]
manifest = "songs.csv"
[stages.ingest]
[stages.standardize]
sample_rate = 44100
"""


def test_valid_job_parses_with_defaults():
    job = parse_job(VALID)
    assert job.stages.enabled() == ["ingest", "standardize"]
    assert job.stages.standardize.channels == 2
    assert job.runtime.max_attempts == 3


def test_root_override():
    assert parse_job(VALID, root="s3://bucket/x").root == "s3://bucket/x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID.replace("sample_rate = 44100", "sample_rte = 44100"), "stages.standardize.sample_rte: unknown key"),
        (VALID.replace("sample_rate = 44100", 'sample_rate = "fast"'), "stages.standardize.sample_rate:"),
        (VALID.replace("sample_rate = 44100", "sample_rate = 1000"), "greater than or equal to 8000"),
        (VALID.replace('root = "/tmp/out"\n', ""), "root: required value is missing"),
        (VALID.replace('name = "demo"', 'name = "de.mo"'), "name: String should match pattern"),
        (VALID + "[stages.ingest.resources]\nnum_cpus = -1\n", "stages.ingest.resources.num_cpus"),
        (VALID.replace('manifest = "songs.csv"', 'manifest = "a.csv"\ndirectory = "d"'), "exactly one of"),
        (VALID + "[bogus]\nx = 1\n", "bogus: unknown key"),
        ("name = 'x'\nroot = '/r'\n[input]\nmanifest='m'\n[stages.standardize]\nmin_seconds = 50\nmax_seconds = 10",
         "min_seconds (50.0) must be below max_seconds"),
        ("name = \n", "not valid TOML"),
        (VALID + "[train.dslm]\nmix = { lyrics_to_sing = 1.0 }\n", "train.dslm.mix: Value error, unknown recipes"),
        (VALID + "[train.dslm]\nmix = { lyrics_to_song = 0.0 }\n", "with a positive sum"),
        (VALID + "[train.dslm.loop]\nprecision = \"fp16\"\n", "train.dslm.loop.precision"),
    ],
)
def test_invalid_specs_name_the_key(text, expected):
    with pytest.raises(JobSpecError) as err:
        parse_job(text, source="job.toml")
    assert expected in str(err.value)
    assert str(err.value).startswith("job.toml")


def test_every_problem_is_listed_at_once():
    text = VALID.replace("sample_rate = 44100", "sample_rate = 'x'\nchannels = 7\nnope = 1")
    with pytest.raises(JobSpecError) as err:
        parse_job(text)
    message = str(err.value)
    for key in ("stages.standardize.sample_rate", "stages.standardize.channels", "stages.standardize.nope"):
        assert key in message


SEGMENT = VALID + "[stages.separate]\n[stages.align]\n[stages.segment]\n"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ("min_seconds = 40.0", "stages.segment.min_seconds: Value error, min_seconds (40) must not exceed max"),
        ("max_seconds = 2.0", "stages.segment.min_seconds: Value error, min_seconds (3) must not exceed max"),
        ("max_seconds = 0", "stages.segment.max_seconds: Input should be greater than 0"),
        ("pad_seconds = inf", "stages.segment.pad_seconds: Input should be a finite number"),
        ("min_gap_seconds = nan", "stages.segment.min_gap_seconds: Input should be a finite number"),
        ('instrumental = "maybe"', "stages.segment.instrumental: Input should be 'keep', 'drop' or 'cap'"),
    ],
)
def test_a_segment_config_the_clip_planner_cannot_use_is_refused_when_the_job_is_read(settings, expected):
    """Before, min_seconds > max_seconds passed here and then rejected every song as error_ValueError."""
    with pytest.raises(JobSpecError) as err:
        parse_job(SEGMENT + settings + "\n", source="job.toml")
    assert expected in str(err.value)


def test_equal_segment_bounds_are_allowed():
    assert parse_job(SEGMENT + "min_seconds = 30.0\n").stages.segment.min_seconds == 30.0


def test_model_folders_become_absolute_and_model_names_stay_names(tmp_path):
    (tmp_path / "weights" / "aligner").mkdir(parents=True)
    text = """
name = "t"
root = "out"
[input]
manifest = "songs.csv"
[stages.ingest]
[stages.standardize]
[stages.separate]
[stages.align]
models = { en = "weights/aligner", de = "facebook/wav2vec2-german" }
"""
    job = parse_job(text, base=tmp_path)
    assert job.stages.config("align").models == {
        "en": str((tmp_path / "weights" / "aligner").resolve()),
        "de": "facebook/wav2vec2-german",
    }
    assert job.root == str((tmp_path / "out").resolve())


def test_filter_clip_bounds_out_of_order_are_refused():
    text = VALID + "[stages.separate]\n[stages.align]\n[stages.segment]\n[stages.filter]\nmin_clip_seconds = 40\n"
    with pytest.raises(JobSpecError, match=r"min_clip_seconds \(40\) must not exceed max_clip_seconds"):
        parse_job(text)


def test_the_shipped_full_scale_recipe_runs_every_stage_and_trains_every_model():
    from pathlib import Path

    from songcorpus.pipeline.jobfile import load_job

    job, _ = load_job(Path(__file__).parents[2] / "jobs" / "songcreator.toml")
    assert job.stages.enabled() == ["ingest", "standardize", "separate", "align", "segment", "filter", "tokenize",
                                    "shard"]
    assert job.train.tokenizer.codes == 16384 and job.train.tokenizer.quantizer == "vq"  # the paper's tokens
    assert job.train.dslm.size == "paper" and job.train.dslm.loop.steps == 500_000
    assert all(getattr(job.train, name).loop.use_gpu for name in ("tokenizer", "dslm", "vae", "ldm"))
