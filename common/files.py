"""Hashing (files, arrays) and atomic writes: readers never see half a file, a crash leaves
no partial file under the final name."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from common.errors import MissingInput

PathLike = Union[str, "os.PathLike[str]"]
MAX_NAME_BYTES = 255   # a file name's limit on Linux and macOS file systems


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def array_digest(*arrays: Any) -> str:
    """A short digest of numpy arrays' shapes, dtypes and bytes: names their content in a
    memo key (numpy is not imported: the arrays bring their own methods)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())   # C order whatever the array's layout
    return h.hexdigest()


@contextmanager
def atomic_path(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` (``suffix`` keeps an extension writers need);
    renamed over ``path`` when the block succeeds, removed when it raises. Works for a
    file or a folder the block creates there."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tail = f".{uuid.uuid4().hex}.tmp{suffix}"
    # the final name, shortened so the temporary stays within the 255-byte name limit
    head = final.name.encode()[:MAX_NAME_BYTES - 1 - len(tail.encode())].decode(errors="ignore")
    tmp = final.with_name(f".{head}{tail}")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp)
        elif tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def write_atomic(path: PathLike, data: Union[str, bytes]) -> Path:
    """Write text (UTF-8, newlines as given) or bytes to ``path`` atomically, synced to
    disk, readable by everyone (results are meant to be shared)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
    return Path(path)


def package_file(package: str, relative: str) -> Optional[Path]:
    """A data file shipped inside an installed package, found without importing the
    package (some import heavy libraries); None when the package is not installed.
    The file itself may be missing: callers say what that means."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / relative


def installed_file(package: str, relative: str, install: str) -> Path:
    """:func:`package_file`, or one FileNotFoundError saying what to install (``install``)."""
    path = package_file(package, relative)
    if path is None:
        raise MissingInput(f"the '{package}' package is not installed: {install}.")
    if not path.is_file():
        raise MissingInput(f"{path} is missing: the {package} install is incomplete; {install}.")
    return path
