"""The `lcmbench` console script: every subcommand reaches its own entry point with the
arguments unchanged, help lists them all, a misspelt command is one error line."""
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lcmbench import cli
from results.schema import json_schema
from tests.conftest import REPO

SCRIPT = Path(sys.executable).with_name("lcmbench")   # installed by `make install` (pyproject [project.scripts])


def lcmbench(*args, cwd=None):
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_help_lists_every_subcommand_on_one_line_each_without_torch(tmp_path):
    assert SCRIPT.is_file(), "the lcmbench script is missing: run `make install`"
    done = lcmbench("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.split("commands:\n")[1].splitlines()]
    assert listed == [c.name for c in cli.COMMANDS]
    for name in ("run", "list", "preflight", "prefetch", "verify", "compare", "paired", "timing", "schema",
                 "regression", "check"):
        assert name in listed
    probe = subprocess.run([sys.executable, "-c", "import sys; from lcmbench.cli import main, usage; usage(); "
                            "print(sorted(m for m in ('torch', 'hydra', 'diffusers') if m in sys.modules))"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr


@pytest.mark.parametrize("command", [c for c in cli.COMMANDS if c.target != cli.RUN_BENCH], ids=lambda c: c.name)
def test_each_subcommand_hands_its_arguments_unchanged_to_its_entry_point(command, monkeypatch):
    module, function = command.target.split(":")
    seen = []
    monkeypatch.setattr(importlib.import_module(module), function, lambda argv: seen.append(list(argv)) or 3)
    args = ["experiment=regression_tiny", "--json", "x y.json", "a b"]
    assert cli.main([command.name, *args]) == 3
    assert seen == [[*command.before, *args, *command.after]]


@pytest.mark.parametrize("name, prog", [("preflight", "python -m bench.preflight"),
                                        ("prefetch", "python -m bench.prefetch"),
                                        ("verify", "python -m bench.prefetch"),
                                        ("compare", "python -m results.compare"),
                                        ("paired", "python -m bench.paired"),
                                        ("timing", "python -m bench.timing"),
                                        ("schema", "python -m results schema"),
                                        ("check", "python -m results"),
                                        ("render", "python -m results"),
                                        ("regression", "python -m bench.regression"),
                                        ("fvd-reference", "python -m bench.fvd_reference")])
def test_subcommand_help_is_the_entry_points_own(name, prog, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: {prog} ")


def test_schema_and_check_do_what_the_module_forms_do(tmp_path, capsys):
    assert cli.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()
    assert cli.main(["check", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_run_and_list_are_run_bench_py(tmp_path):
    listed = lcmbench("list", cwd=tmp_path)
    direct = subprocess.run([sys.executable, str(REPO / "run_bench.py"), "list"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert listed.returncode == 0 and listed.stdout == direct.stdout and "Config group experiment/" in listed.stdout
    bad = lcmbench("run", "experiment=tabel1", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "lcmbench: error: unknown experiment 'tabel1' in 'experiment=tabel1'. Did you mean 'table1'? Available: "
        + bad.stderr.split("Available: ")[1].strip()]
    assert not (tmp_path / "runs").exists()
    assert "run_bench is powered by Hydra" in lcmbench("run", "--help", cwd=tmp_path).stdout


def test_unknown_subcommand_is_one_line_with_a_suggestion(tmp_path):
    done = lcmbench("prefligt", "experiment=table1", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("lcmbench: error: unknown command 'prefligt'. Did you mean 'preflight'?")
    none = lcmbench(cwd=tmp_path)
    assert none.returncode == 2 and none.stderr.count("\n") == 1 and none.stderr.startswith("lcmbench: error:")


def test_python_dash_m_lcmbench_is_the_same_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lcmbench", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout == lcmbench("--help", cwd=tmp_path).stdout
