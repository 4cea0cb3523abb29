"""The one way a command reports an input the user can fix: a single
``lcmbench: error:`` line on stderr (a list of problems indented below it), exit 2.
Imports nothing of the project, so every command can use it."""
from __future__ import annotations

import sys
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
