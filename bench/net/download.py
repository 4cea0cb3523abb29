"""The verified downloader for the few plain URLs (the official caption file, FVD
detectors, VBench model files): into ``<target>.part``, resumed with an HTTP Range
request after an interruption, checked against the expected sha256 when one is known,
then renamed into place. A corrupted download is deleted; a 404 is one clear error.
Hub files go through ``huggingface_hub`` instead (``bench/prefetch/fetch.py``)."""
from __future__ import annotations

import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from bench.net.offline import is_loopback
from common.errors import LcmbenchError
from common.files import sha256_file

USER_AGENT = "lcmbench-prefetch/1"


class DownloadError(LcmbenchError, RuntimeError):
    """A download failed; the message says why and what to do."""


class NotFoundOnServer(DownloadError):
    """The server answered 404 (or 410)."""


class ChecksumMismatch(DownloadError):
    """The downloaded bytes do not have the expected sha256; they were deleted."""


class DownloadInterrupted(DownloadError):
    """The transfer stopped early; the partial file is kept for a resume."""


@dataclass
class DownloadResult:
    path: Path
    size: int
    sha256: str
    status: str                 # downloaded | present
    resumed_from: int = 0       # bytes already on disk when the last request started
    requests: int = 0


def _open(url: str, headers: Dict[str, str], timeout: float):
    request = urllib.request.Request(url, headers=headers)
    host = urllib.parse.urlsplit(url).hostname
    # a proxy from the environment must not capture loopback test/mirror servers
    handlers = [urllib.request.ProxyHandler({})] if is_loopback(host) else []
    return urllib.request.build_opener(*handlers).open(request, timeout=timeout)


def _content_range(value: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """'bytes 100-199/300' -> (100, 300); 'bytes */300' -> (None, 300)."""
    m = re.match(r"bytes\s+(\d+|\*)(?:-\d+)?/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = None if m.group(1) == "*" else int(m.group(1))
    total = None if m.group(2) == "*" else int(m.group(2))
    return start, total


def download_url(url: str, target: str | os.PathLike, sha256: Optional[str] = None, *, timeout: float = 30.0,
                 retries: int = 3, chunk_size: int = 1 << 20, backoff: float = 1.0,
                 progress: Optional[Callable[[int, Optional[int]], None]] = None) -> DownloadResult:
    """Fetch ``url`` into ``target``, resuming ``target.part`` with HTTP Range requests.

    An existing target with the right sha256 is kept (status "present"); one with a
    wrong sha256 is replaced. After the transfer the whole file is hashed: a mismatch
    deletes it and raises ChecksumMismatch. 404 raises NotFoundOnServer. When the
    connection drops, up to ``retries`` resumed attempts follow; after that
    DownloadInterrupted is raised and the .part file stays for the next call.
    """
    target = Path(os.path.expanduser(str(target)))
    expected = sha256.lower() if sha256 else None
    if target.is_file():
        digest = sha256_file(target)
        if expected is None or digest == expected:
            return DownloadResult(target, target.stat().st_size, digest, "present")
        target.unlink()   # a damaged or different file: fetch it again
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    requests = 0
    resumed_from = 0
    last_error = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(min(backoff * attempt, 10.0))
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        requests += 1
        try:
            response = _open(url, headers, timeout)
        except urllib.error.HTTPError as err:
            if err.code in (404, 410):
                raise NotFoundOnServer(f"{url}: HTTP {err.code} {err.reason}: the file is not on the server. "
                                       f"Check the URL (or the preflight.urls entry that set it).") from None
            if err.code == 416 and offset:
                _, total = _content_range(err.headers.get("Content-Range"))
                if total == offset:   # the .part file is already complete
                    break
                part.unlink(missing_ok=True)   # the .part is longer than the file: start over
                last_error = f"HTTP 416 with a {offset}-byte partial file"
                continue
            if 400 <= err.code < 500 and err.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {err.code} {err.reason}. Check the URL and any access "
                                    f"rights it needs.") from None
            last_error = f"HTTP {err.code} {err.reason}"
            continue
        except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
            last_error = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            continue
        with response:
            status = response.status
            if offset and status == 206:
                start, total = _content_range(response.headers.get("Content-Range"))
                if start != offset:   # the server answered another range: start over
                    offset, mode = 0, "wb"
                else:
                    mode = "ab"
            else:
                offset, mode = 0, "wb"   # 200: the server ignored Range, the body is the whole file
                total = None
            resumed_from = offset
            length = response.headers.get("Content-Length")
            if total is None and length is not None:
                total = offset + int(length)
            try:
                with open(part, mode) as out:
                    while True:
                        block = response.read(chunk_size)
                        if not block:
                            break
                        out.write(block)
                        if progress:
                            progress(out.tell(), total)
            except (OSError, http.client.HTTPException) as err:
                last_error = f"connection lost ({type(err).__name__})"
                continue
        size = part.stat().st_size
        if total is not None and size < total:
            last_error = f"connection closed at {size} of {total} bytes"
            continue
        break
    else:
        have = part.stat().st_size if part.is_file() else 0
        raise DownloadInterrupted(f"{url}: download interrupted ({last_error}) after {retries + 1} attempt(s); "
                                  f"{have} bytes kept in {part}. Run the same command again to resume.")
    digest = sha256_file(part)
    if expected and digest != expected:
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(f"{url}: the downloaded file has sha256 {digest}, expected {expected}; it was "
                               f"deleted. Retry; if it happens again the server holds another version: check the "
                               f"URL and the expected sha256.")
    os.replace(part, target)
    return DownloadResult(target, target.stat().st_size, digest, "downloaded", resumed_from, requests)
