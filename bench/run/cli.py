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

from common.errors import LcmbenchError, fail, report_bug
from common.files import MAX_NAME_BYTES
from common.names import env_flag_problem
from common.paths import long_component, what_is

from bench.net.offline import FLAG_ENV


_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def user_error_types() -> tuple:
    """Exceptions that mean the input is wrong, not the code: every :class:`LcmbenchError`
    (bad settings, files, stores, preflight problems ...), and running out of GPU memory.
    Anything else is a bug: it keeps its traceback (:func:`report_bug`)."""
    import torch  # heavy: only once a run has failed

    return (LcmbenchError, torch.cuda.OutOfMemoryError)


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
    # heavy: torch and diffusers load only once a run starts; the command line's checks stay instant
    from bench.run.pipeline import run

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
        message = explain_os_error(err, run_dir)   # a full disk, a read-only folder: the machine, not the code
        if message is not None:
            fail(message)
        if not isinstance(err, user_errors):
            report_bug(err)
        fail(str(err))
    except user_errors as err:   # noqa: B030 (a tuple computed at run time)
        text = str(err) or type(err).__name__
        problems = getattr(getattr(err, "report", None), "problems", None)
        if problems:   # a PreflightError: the problems themselves, not a pointer to the plan above
            text = preflight_problems(problems)
        if isinstance(err, _torch_oom()):
            text = (f"out of GPU memory outside generation ({text.splitlines()[0]}). Use a smaller metric "
                    f"batch size, runner.dtype=float16, or a larger GPU.")
        fail(text)
    except Exception as err:   # anything else is a bug: keep its traceback
        report_bug(err)


def preflight_problems(problems) -> str:
    """One line for one problem (what, then what to do); a numbered list for several."""
    if len(problems) == 1:
        p = problems[0]
        return f"{p.what} {p.fix}"
    return "\n".join([f"preflight found {len(problems)} problems; nothing was built:"]
                     + [f"{i}. {p.what} {p.fix}" for i, p in enumerate(problems, 1)])


def _torch_oom() -> tuple:
    import torch  # heavy: as above

    return (torch.cuda.OutOfMemoryError,)


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
    long = long_component(target)
    if long is not None:
        return (f"the run directory {target} has a folder name of {len(long.encode())} bytes ('{long[:20]}...'); file "
                f"systems allow at most {MAX_NAME_BYTES} per name. Choose a shorter hydra.run.dir (or run_dir).")
    if target.exists() and not target.is_dir():
        return f"the run directory {target} is a file, not a directory. Choose another hydra.run.dir (or run_dir)."
    probe = target
    while not probe.exists():
        if probe.is_symlink() or what_is(probe) != "missing":   # a dangling link or a loop: mkdir cannot pass it
            return (f"the run directory {target} cannot be created: {probe} is {what_is(probe)}. Remove or fix "
                    f"the link, or choose another hydra.run.dir (or run_dir).")
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


def check_environment() -> Optional[str]:
    """Environment flags with a value no library reads as on or off (HF_HUB_OFFLINE=banana
    would silently mean online)."""
    for name in FLAG_ENV:
        problem = env_flag_problem(name)
        if problem:
            return problem
    return None
