"""The one way a command reports an input the user can fix: a single
``lcmbench: error:`` line on stderr (a list of problems indented below it), exit 2; and
the one way it reports a bug: the traceback and a line asking to report it, exit 1.
Imports nothing of the project, so every command can use it."""
from __future__ import annotations

import sys
import traceback
from typing import NoReturn

EXIT_USER_ERROR = 2


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
