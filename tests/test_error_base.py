"""One error base: every error a user can fix derives from LcmbenchError, and the command
line turns only those into one ``lcmbench: error:`` line; anything else keeps its
traceback, with a line asking to report it."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import bench.run.cli as cli
import bench.run.pipeline
from common.errors import InputError, LcmbenchError, MissingInput
from tests.conftest import compose

PACKAGES = ("bench", "common", "metrics", "models", "results", "lcmbench")


def project_exceptions():
    seen = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):   # rooms included
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                    seen[f"{obj.__module__}.{name}"] = obj
    return seen


def test_every_error_class_of_the_project_is_a_user_error():
    classes = project_exceptions()
    assert len(classes) >= 20   # the scan found them
    not_based = [name for name, cls in classes.items() if not issubclass(cls, LcmbenchError)]
    assert not_based == [], "derive these from common.errors.LcmbenchError (or one of its subclasses)"
    assert issubclass(InputError, ValueError) and issubclass(MissingInput, FileNotFoundError)


def run_failing(monkeypatch, capsys, tmp_path, error):
    def run(cfg, run_dir):
        raise error

    monkeypatch.setattr(bench.run.pipeline, "run", run)
    monkeypatch.delenv("LCMBENCH_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        cli.run_with_clear_errors(compose([]), tmp_path / "run")
    return info.value.code, capsys.readouterr().err


def test_a_user_error_is_one_line(monkeypatch, capsys, tmp_path):
    code, err = run_failing(monkeypatch, capsys, tmp_path, InputError("protocol.nfe=[0] is not a step count. Use 1 or more."))
    assert code == 2 and err.strip() == "lcmbench: error: protocol.nfe=[0] is not a step count. Use 1 or more."
    assert "Traceback" not in err


@pytest.mark.parametrize("error", [ValueError("math domain error"), KeyError("x"), FileNotFoundError(2, "gone")])
def test_anything_else_keeps_its_traceback_and_asks_for_a_report(monkeypatch, capsys, tmp_path, error):
    code, err = run_failing(monkeypatch, capsys, tmp_path, error)
    assert code == 1
    assert "Traceback (most recent call last)" in err and f"{type(error).__name__}" in err
    assert err.strip().splitlines()[-1].startswith(f"lcmbench: internal error ({type(error).__name__}): this is a bug")
    assert "lcmbench: error:" not in err
