"""The command surface of DESIGN.md §1: every subcommand answers --help, bad jobs fail before work."""

import pytest

from songcorpus.cli import main

COMMANDS = [["run"], ["status"], ["synth"], ["models"], ["models", "smoke"], ["eval-separation"],
            ["eval-alignment"], ["plan-clips"]]


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
