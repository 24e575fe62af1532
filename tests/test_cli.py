"""The command surface of DESIGN.md §1: every subcommand answers --help, bad jobs fail before work."""

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
