"""Turn the errors a user can fix into one clear line instead of a stack trace.

Every such error prints ``lcmbench: error: <what was wrong and what to do>`` on
stderr and exits with status 2; nothing is half-written, because clips, features and
results are only ever renamed into place once complete. Set LCMBENCH_DEBUG=1 to get
the full traceback instead.
"""
from __future__ import annotations

import errno
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from .errors import fail

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def user_error_types() -> tuple:
    """Exceptions that mean the input is wrong, not the code. ValueError covers bad
    config values, prompt files, preflight problems and results that fail the schema;
    FileNotFoundError covers missing weights, files and dataset roots."""
    import torch

    from models.weights import UnsafeWeights, WeightsNotFound

    from .lock import RunDirLocked
    from .offline import NetworkBlocked
    from .runner import GenerationOutOfMemory, StoreIncomplete, StoreMismatch

    return (NetworkBlocked, WeightsNotFound, UnsafeWeights, StoreMismatch, StoreIncomplete, GenerationOutOfMemory,
            RunDirLocked,
            FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError, torch.cuda.OutOfMemoryError)


def explain_os_error(err: OSError, run_dir: Path) -> Optional[str]:
    if err.errno == errno.EROFS:
        return (f"read-only file system: {err.filename or err}. Choose a run_dir / hydra.run.dir and cache_dir on "
                f"a writable disk.")
    if err.errno in _DISK_FULL:
        where = f" ({err.filename})" if err.filename else ""
        return (f"disk full while writing{where} under {run_dir}. Nothing half-written was kept and every clip "
                f"already in the store is intact: free space and run the same command again "
                f"(same run_dir / hydra.run.dir) to resume.")
    if isinstance(err, PermissionError):
        return f"permission denied: {err.filename or err}. Choose a writable run_dir / hydra.run.dir or cache_dir."
    return None


def run_with_clear_errors(cfg: DictConfig, run_dir: Path) -> None:
    from .pipeline import run

    run_dir = Path(cfg.get("run_dir") or run_dir)
    if os.environ.get("LCMBENCH_DEBUG", "") not in ("", "0"):
        run(cfg, run_dir)
        return
    user_errors = user_error_types()
    try:
        run(cfg, run_dir)
    except KeyboardInterrupt:
        print(f"lcmbench: interrupted. Everything already written under {run_dir} is intact; run the same "
              f"command again to resume.", file=sys.stderr)
        sys.exit(130)
    except OSError as err:
        message = explain_os_error(err, run_dir)
        if message is None:
            if isinstance(err, user_errors):   # FileNotFoundError and friends
                fail(str(err))
            raise
        fail(message)
    except user_errors as err:   # noqa: B030 (a tuple computed at run time)
        text = str(err) or type(err).__name__
        problems = getattr(getattr(err, "report", None), "problems", None)
        if problems:   # a PreflightError: the problems themselves, not a pointer to the plan above
            text = preflight_problems(problems)
        if isinstance(err, _torch_oom()):
            text = (f"out of GPU memory outside generation ({text.splitlines()[0]}). Use a smaller metric "
                    f"batch size, runner.dtype=float16, or a larger GPU.")
        fail(text)


def preflight_problems(problems) -> str:
    """One line for one problem (what, then what to do); a numbered list for several."""
    if len(problems) == 1:
        p = problems[0]
        return f"{p.what} {p.fix}"
    return "\n".join([f"preflight found {len(problems)} problems; nothing was built:"]
                     + [f"{i}. {p.what} {p.fix}" for i, p in enumerate(problems, 1)])


def _torch_oom() -> tuple:
    import torch

    return (torch.cuda.OutOfMemoryError,)


# ------------------------------------------------------------------ overrides, before Hydra

GROUPS = ("experiment", "model", "sampler", "metric")
_SWEEP_FUNCTIONS = ("range(", "choice(", "glob(", "interval(", "tag(", "sort(", "shuffle(", "${")


def _did_you_mean(name: str, options) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(options), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def _group_values(value: str):
    if not value or any(f in value for f in _SWEEP_FUNCTIONS):
        return []
    if value.startswith("[") or value.startswith("{"):
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def _check_key(path: str) -> Optional[str]:
    """A dotted key against the config schema (bench/config.py); None when it exists
    or the schema leaves that level free (dicts of Any)."""
    import dataclasses
    import typing

    from .config import BenchConfig

    node, done = BenchConfig, []
    parts = path.split(".")
    i = 0
    while i < len(parts):
        if not dataclasses.is_dataclass(node):
            return None
        hints = typing.get_type_hints(node)
        name = parts[i]
        if name not in hints:
            where = ".".join(done) or "the top level"
            return (f"unknown setting '{path}': '{name}' is not a key of {where}.{_did_you_mean(name, hints)} "
                    f"The settings are in bench/config.py; `python run_bench.py --cfg job` prints them all.")
        done.append(name)
        kind = hints[name]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is typing.Union and len(args) == 1:
            kind = args[0]
        if typing.get_origin(kind) is dict:
            value_type = typing.get_args(kind)[1]
            if i + 1 < len(parts):
                done.append(parts[i + 1])   # a free name, e.g. the method in methods.<name>.lora_scale
            node, i = value_type, i + 2
            continue
        node, i = kind, i + 1
    return None


def _schema_type(path: str):
    """The annotated type of a dotted key of the schema, or None where it is free-form."""
    import dataclasses
    import typing

    from .config import BenchConfig

    node: typing.Any = BenchConfig
    parts = path.split(".")
    i = 0
    while i < len(parts):
        if not dataclasses.is_dataclass(node):
            return None
        kind = typing.get_type_hints(node).get(parts[i])
        if kind is None:
            return None
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is typing.Union and len(args) == 1:
            kind = args[0]
        if typing.get_origin(kind) is dict:
            node, i = typing.get_args(kind)[1], i + 2
            if i > len(parts):
                return None
            continue
        node, i = kind, i + 1
    return node


def _check_list_value(path: str, value: str) -> Optional[str]:
    """A list-typed setting given a bare value (protocol.nfe=4): Hydra's own message is
    several lines about type conversion; say what to write instead."""
    import typing

    if typing.get_origin(_schema_type(path)) is not list or value.startswith("[") or value in ("null", "None"):
        return None
    if any(f in value for f in _SWEEP_FUNCTIONS) or "," in value:
        return None
    return f"{path} is a list: write {path}=[{value}] (brackets, comma-separated, e.g. {path}=[1,2,4,8])."


def _search_path(argv) -> list:
    """Config folders added with hydra.searchpath=[file:///path,...] (your own model,
    metric or experiment files beside bench/configs)."""
    out = []
    for arg in argv:
        if arg.lstrip("+").startswith("hydra.searchpath="):
            for item in arg.split("=", 1)[1].strip("[]").split(","):
                item = item.strip().strip("'\"")
                if item.startswith("file://"):
                    out.append(Path(item[len("file://"):]))
    return out


def check_overrides(argv, config_dir: str) -> Optional[str]:
    """Catch misspelt config group options (experiment=tabel1, model@methods.x=animatelcn)
    and misspelt keys before Hydra starts, with the closest valid name. Returns the error
    message, or None when everything checked is known. Anything this does not understand
    is left to Hydra."""
    import re

    roots = [Path(config_dir)] + _search_path(argv)
    group_re = re.compile(r"^(?P<prefix>[+~]*)/?(?P<group>[a-z_]+)(?:@(?P<pkg>[\w.]+))?=(?P<value>.*)$")
    key_re = re.compile(r"^(?P<key>[A-Za-z_][\w]*(?:\.[\w]+)*)=")
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        m = group_re.match(arg)
        if m and m["group"] in GROUPS and (m["group"] == "experiment" or m["pkg"] or m["prefix"]):
            group = m["group"]
            options = sorted({p.stem for root in roots for p in (root / group).glob("*.yaml")})
            for name in _group_values(m["value"]):
                if name not in options and name != f"{group}_schema" and name != "null":
                    return (f"unknown {group} '{name}' in '{arg}'.{_did_you_mean(name, options)} "
                            f"Available: {', '.join(options)} (bench/configs/{group}/).")
            # the package names the metric: +metric@metrics.fvd=fvd_random
            if group == "metric" and m["pkg"] and m["pkg"].startswith("metrics.") and "~" not in m["prefix"]:
                problem = _check_name("metric", m["pkg"].split(".", 1)[1], arg)
                if problem:
                    return problem
            continue
        k = None if arg.startswith("~") else key_re.match(arg.lstrip("+"))
        if k and not k["key"].startswith("hydra"):
            # '+key=value' adds a key: it must still be one the schema has (or a free-form level)
            problem = _check_key(k["key"]) or _check_list_value(k["key"], arg.split("=", 1)[1].strip())
            if problem:
                return problem
        if k:
            value = arg.split("=", 1)[1].strip()
            if re.fullmatch(r"methods\.\w+\.name", k["key"].lstrip("+")):
                problem = _check_name("model", value, arg)
            elif re.fullmatch(r"methods\.\w+\.sampler\.kind", k["key"].lstrip("+")):
                problem = _check_name("sampler kind", value, arg)
            else:
                problem = None
            if problem:
                return problem
    return None


def check_run_dir(argv) -> Optional[str]:
    """The run directory named on the command line (hydra.run.dir= or run_dir=) must be
    a directory this process can write, or creatable. Checked before Hydra, which would
    otherwise fail with a traceback, and with a real write probe (root passes os.access)."""
    target = None
    for arg in argv:
        for key in ("hydra.run.dir=", "run_dir=", "+run_dir=", "++run_dir="):
            if arg.startswith(key) and arg[len(key):].strip() not in ("", "null"):
                target = Path(arg[len(key):].strip().strip("'\"")).expanduser()
    if target is None:
        return None
    if target.exists() and not target.is_dir():
        return f"the run directory {target} is a file, not a directory. Choose another hydra.run.dir (or run_dir)."
    probe = target
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        return f"the run directory {target} cannot be created: {probe} is a file. Choose another hydra.run.dir."
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        what = "is not writable" if probe == target else f"cannot be created: {probe} is not writable"
        return (f"the run directory {target} {what} ({err.strerror or err}). Choose a writable hydra.run.dir "
                f"(or run_dir), or fix the folder's permissions.")
    return None


def _check_name(kind: str, name: str, arg: str) -> Optional[str]:
    """A model, sampler or metric name against its registry (pure Python, no torch)."""
    if not name or any(f in name for f in _SWEEP_FUNCTIONS) or "," in name:
        return None
    if kind == "model":
        from models.registry import MODELS as known
    elif kind == "sampler kind":
        from models.schedulers import SAMPLER_DEFAULTS as known
    else:
        from metrics import METRICS as known
    if name in known:
        return None
    return (f"unknown {kind} '{name}' in '{arg}'.{_did_you_mean(name, known)} "
            f"Available: {', '.join(sorted(known))}.")
