"""The command surface the README lists: every subcommand answers --help, bad jobs fail before work."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from songcorpus.cli import main

COMMANDS = [["run"], ["status"], ["synth"], ["models"], ["models", "smoke"], ["eval-separation"],
            ["eval-alignment"], ["plan-clips"], ["validate"]]


@pytest.mark.parametrize("command", [[], *COMMANDS])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: songcorpus" in capsys.readouterr().out


def test_invalid_job_is_refused_before_any_work(tmp_path, capsys):
    job = tmp_path / "bad.toml"
    job.write_text(
        f'name = "x"\nroot = "{tmp_path / "out"}"\n[input]\nmanifest = "m.csv"\n[stages.standardize]\nsample_rte = 1\n'
    )
    assert main(["run", str(job)]) == 2
    err = capsys.readouterr().err
    assert "stages.standardize.sample_rte: unknown key" in err
    assert not (tmp_path / "out").exists()


def test_status_of_an_empty_root(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 0
    assert "no runs" in capsys.readouterr().out


DEMO = Path(__file__).parents[1] / "jobs" / "demo.toml"


def test_validate_prints_the_phases_and_the_fitted_plan_without_running(tmp_path, capsys):
    assert main(["validate", str(DEMO)]) == 0
    out = capsys.readouterr().out
    assert "job 'demo' is valid" in out and "phase 2: standardize -> separate -> align -> segment -> filter" in out
    assert "phase 3: tokenize -> shard" in out and "separate " in out
    assert not (tmp_path / "out").exists()


def test_validate_refuses_a_gpu_the_cluster_does_not_have_with_the_key_to_change(tmp_path, capsys):
    job = tmp_path / "gpu.toml"
    job.write_text(DEMO.read_text() + "\n[stages.separate.resources]\nnum_gpus = 1\n")
    assert main(["validate", str(job)]) == 2
    assert "set stages.separate.resources.num_gpus = 0" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback_while_a_user_error_is_one_line(tmp_path, monkeypatch, capsys):
    import songcorpus.pipeline.validate as validate

    def broken(job):
        raise KeyError("a bug, not the user's fault")

    monkeypatch.setattr(validate, "validate_text", broken)
    with pytest.raises(KeyError):
        main(["validate", str(DEMO)])
    assert main(["validate", str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: job file not found")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_bad_address_fails_before_the_corpus_is_made_or_anything_written(tmp_path, capsys):
    started = time.monotonic()
    assert main(["run", str(DEMO), "--root", str(tmp_path / "out"), "--address", f"127.0.0.1:{_closed_port()}"]) == 2
    assert "cannot reach a Ray head" in capsys.readouterr().err
    assert time.monotonic() - started < 15 and not (tmp_path / "out").exists()  # no synth/, no runs/


def test_a_model_that_cannot_load_fails_the_run_in_preflight_and_publishes_nothing(tmp_path, capsys):
    """An aligner folder without weights: exit 2 before any work, one line naming the key, no version, no Ray."""
    broken = tmp_path / "aligner"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    job = tmp_path / "job.toml"
    job.write_text(DEMO.read_text().replace("songs = 12", "songs = 2").replace(
        'models = { en = "assets/models/aligner/3cdf4a993afa197d/wav2vec2"', f'models = {{ en = "{broken}"'))
    assert main(["run", str(job), "--root", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"stage align: stages.align.models.en = '{broken}' holds no weights" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "versions").exists() and not (tmp_path / "out" / "synth").exists()
    assert not (tmp_path / "out" / "runs").exists()  # stopped before the run began: no Ray, no run folder
    # a separator repository that does not hold the model is the same kind of failure
    job.write_text(DEMO.read_text().replace('repo = "assets/models/separator/e46db588ac9c0b93/demucs"',
                                            f'repo = "{tmp_path}"'))
    assert main(["run", str(job), "--root", str(tmp_path / "out")]) == 2
    assert "stage separate cannot start" in capsys.readouterr().err


def test_a_cuda_device_without_a_gpu_request_is_refused_when_the_job_is_read(tmp_path, capsys):
    job = tmp_path / "cuda.toml"
    job.write_text(DEMO.read_text().replace('tokenizer = "latest"', 'tokenizer = "latest"\ndevice = "cuda"'))
    assert main(["validate", str(job)]) == 2
    assert "stages.tokenize: Value error, device = 'cuda' but resources.num_gpus = 0" in capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_command_without_a_traceback():
    """`songcorpus validate JOB | head`: the pipe is closed before the command writes a line."""
    proc = subprocess.Popen([sys.executable, "-m", "songcorpus", "validate", str(DEMO)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
