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
    "text, expected",
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
