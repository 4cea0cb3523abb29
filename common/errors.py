"""The one base of every error a user can fix. A command prints such an error as one
``lcmbench: error:`` line (what was wrong, what to do) and exits 2; any other exception
is a bug in lcmbench and keeps its traceback, with a line asking to report it
(:func:`fail`, :func:`report_bug`; they import nothing of the project, so every command can use them).

Each subclass also derives from the built-in it refines (ValueError, FileNotFoundError,
RuntimeError ...), so code that catches those keeps working."""
from __future__ import annotations

import sys
import traceback
from typing import NoReturn

EXIT_USER_ERROR = 2


class LcmbenchError(Exception):
    """An input, file or setting the user can fix; the message says what to do."""


class InputError(LcmbenchError, ValueError):
    """A value given to the harness (a setting, an option, a file's content) is wrong."""


class MissingInput(LcmbenchError, FileNotFoundError):
    """A file or folder the harness was told to read, or needs, does not exist."""


class UnusableFile(LcmbenchError, RuntimeError):
    """A file that exists but cannot be used: corrupt, another release, or a pickle that
    holds more than tensors."""

def fail(message: str) -> NoReturn:
    """Print one ``lcmbench: error:`` line (further lines of a list indented) and exit 2."""
    first, *rest = str(message).strip().splitlines() or [""]
    print(f"lcmbench: error: {first}", file=sys.stderr)
    for line in rest:
        print(f"  {line}", file=sys.stderr)
    sys.stderr.flush()
    sys.exit(EXIT_USER_ERROR)


def report_bug(err: BaseException) -> NoReturn:
    """An exception that is no user error: its traceback, then one line asking to report it."""
    traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    print(f"lcmbench: internal error ({type(err).__name__}): this is a bug in lcmbench, not a problem with your "
          f"input. Please report it with the command you ran and the traceback above. Everything already written "
          f"is intact.", file=sys.stderr)
    sys.stderr.flush()
    sys.exit(1)
