"""``lcmbench COMMAND [ARGS ...]``: one command in front of the project's entry points.

Each subcommand hands the rest of the command line, unchanged, to one existing entry
point, whose own argument parser reads it; nothing here defines an option, so each
command keeps a single parser and the ``python -m`` forms and ``run_bench.py`` behave
exactly as before. Only the chosen entry point's module is imported, so
``lcmbench --help`` and a misspelt command cost no torch import.
"""
from __future__ import annotations

import importlib
import importlib.util
import runpy
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from common.errors import LcmbenchError, fail, report_bug
from common.names import did_you_mean


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    target: str                  # "module:function", or "run_bench.py" for the Hydra app
    before: Tuple[str, ...] = ()   # arguments put in front of the user's (a mode of the target)
    after: Tuple[str, ...] = ()    # arguments put after them (a flag of the target)

    @property
    def python_form(self) -> str:
        """The command this one stands for, as the docs write it."""
        if self.target == RUN_BENCH:
            return " ".join(("python run_bench.py",) + self.before + ("...",) + self.after)
        module = self.target.split(":")[0]
        module = module[: -len(".__main__")] if module.endswith(".__main__") else module
        return " ".join((f"python -m {module}",) + self.before + ("...",) + self.after)


RUN_BENCH = "run_bench.py"

COMMANDS: Tuple[Command, ...] = (
    Command("run", "run an experiment (Hydra overrides: experiment=table1 ...)", RUN_BENCH),
    Command("list", "models, metrics, experiments and config groups", RUN_BENCH, ("list",)),
    Command("preflight", "check every asset, print the plan; build nothing",
            "bench.preflight.__main__:main"),
    Command("prefetch", "download what an experiment needs, write a manifest", "bench.prefetch.__main__:main"),
    Command("verify", "check a prefetch MANIFEST on an offline node", "bench.prefetch.__main__:main",
            ("--verify",)),
    Command("compare", "verdicts of BASELINE.json against CURRENT.json",
            "results.compare:main"),
    Command("paired", "paired differences of two runs, metric by metric on shared clips",
            "bench.paired.__main__:main"),
    Command("timing", "denoising time per clip, VAE excluded", "bench.timing.__main__:main"),
    Command("schema", "the results file's JSON Schema (--markdown)", "results.__main__:main",
            ("schema",)),
    Command("check", "verify a results.json (intervals, cells, features)",
            "results.__main__:main", (), ("--check",)),
    Command("render", "re-render a results.json's tables, plots, report", "results.__main__:main"),
    Command("regression", "run, compare with a baseline, give the verdict",
            "bench.regression.__main__:main"),
    Command("fvd-reference", "make FVD's real-video reference file once",
            "bench.fvd_reference:main"),
)
BY_NAME = {c.name: c for c in COMMANDS}


def usage() -> str:
    width = max(len(c.name) for c in COMMANDS)
    lines = ["usage: lcmbench COMMAND [ARGS ...]", "",
             "Regenerate and check the AnimateLCM paper's results. Each command passes its arguments unchanged",
             "to the entry point named beside it; 'lcmbench COMMAND --help' lists them.", "",
             "commands:"]
    form = max(len(c.python_form) for c in COMMANDS)
    lines += [f"  {c.name:<{width}}  {c.python_form:<{form}}  {c.summary}" for c in COMMANDS]
    return "\n".join(lines)


def run_bench_path() -> str:
    """run_bench.py, located without running it (installed as a module by pyproject's py-modules)."""
    spec = importlib.util.find_spec("run_bench")
    if spec is None or not spec.origin:
        fail("run_bench.py is not installed: run `make install` (pip install -e .) in the checkout.")
    return spec.origin


def dispatch(command: Command, args: Sequence[str]) -> int:
    argv = [*command.before, *args, *command.after]
    if "-h" in args or "--help" in args:   # the target's own help, without a flag that wants a value (--verify)
        argv = [*(a for a in command.before if not a.startswith("-")), *args]
    if command.target == RUN_BENCH:
        # Run the file as `python run_bench.py ARGS` does: Hydra reads sys.argv and finds its
        # configs beside the file, and the list / override checks under __main__ run too.
        path = run_bench_path()
        sys.argv = [path, *argv]
        runpy.run_path(path, run_name="__main__")
        return 0
    module, function = command.target.split(":")
    return getattr(importlib.import_module(module), function)(argv)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        fail("no command given: lcmbench COMMAND [ARGS ...]; 'lcmbench --help' lists the commands.")
    if argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    command = BY_NAME.get(name)
    if command is None:
        fail(f"unknown command {name!r}.{did_you_mean(name, BY_NAME)} Commands: {', '.join(BY_NAME)} "
             f"('lcmbench --help' says what each does).")
    try:
        code = dispatch(command, rest)
    except LcmbenchError as err:   # an input the user can fix: one line
        fail(str(err) or type(err).__name__)
    except Exception as err:   # anything else is a bug: its traceback and a line asking to report it
        report_bug(err)
    return int(code or 0)
