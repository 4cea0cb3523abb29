"""The one base of every error a user can fix. A command prints such an error as one
``lcmbench: error:`` line (what was wrong, what to do) and exits 2; any other exception
is a bug in lcmbench and keeps its traceback, with a line asking to report it.

Each subclass also derives from the built-in it refines (ValueError, FileNotFoundError,
RuntimeError ...), so code that catches those keeps working."""
from __future__ import annotations


class LcmbenchError(Exception):
    """An input, file or setting the user can fix; the message says what to do."""


class InputError(LcmbenchError, ValueError):
    """A value given to the harness (a setting, an option, a file's content) is wrong."""


class MissingInput(LcmbenchError, FileNotFoundError):
    """A file or folder the harness was told to read, or needs, does not exist."""


class UnusableFile(LcmbenchError, RuntimeError):
    """A file that exists but cannot be used: corrupt, another release, or a pickle that
    holds more than tensors."""
