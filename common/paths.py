"""What a path the user gave actually is, in words: a message can then say "is a
directory" or "is a symlink loop" instead of "does not exist"."""
from __future__ import annotations

import errno
import os
import stat
from typing import Optional

from common.files import MAX_NAME_BYTES, PathLike


def what_is(path: PathLike) -> str:
    """One phrase: 'a file', 'a directory', 'a symlink loop', 'a dangling symlink to X',
    'a character device', ..., or 'missing'."""
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symlink loop"
        if err.errno == errno.ENAMETOOLONG:
            return "a name longer than the file system allows"
        if err.errno == errno.ENOTDIR:
            return f"under {blocking_file(path)}, which is a file, not a directory"
        if os.path.islink(path):
            return f"a dangling symlink to {os.readlink(path)}"
        return "missing"
    for test, words in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                        (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return words
    return "not a regular file or directory"


def blocking_file(path: PathLike) -> str:
    """The first ancestor of ``path`` that exists but is not a directory (e.g. /dev/null of /dev/null/x)."""
    parts = os.path.abspath(os.fspath(path)).split(os.sep)
    for i in range(2, len(parts) + 1):
        prefix = os.sep.join(parts[:i]) or os.sep
        if os.path.exists(prefix) and not os.path.isdir(prefix):
            return prefix
    return os.fspath(path)


def not_a(path: PathLike, want: str) -> Optional[str]:
    """None when ``path`` is what is wanted ('file' or 'directory'); else '<path> is <what it
    is>, not a <want>' or '<path> does not exist'."""
    what = what_is(path)
    if what == f"a {want}":
        return None
    if what == "missing":
        return f"{os.fspath(path)} does not exist"
    if what.startswith("under "):
        blocker = blocking_file(path)
        return f"{os.fspath(path)} cannot exist: {blocker} is {what_is(blocker)}, not a directory"
    return f"{os.fspath(path)} is {what}, not a {want}"


def long_component(path: PathLike) -> Optional[str]:
    """The first component of ``path`` longer than a file name may be, or None."""
    for part in os.fspath(path).split(os.sep):
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            return part
    return None
