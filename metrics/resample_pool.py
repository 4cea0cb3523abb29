"""tr sqrt(R S_b R) of many bootstrap resamples on the host, on every core.

The per-resample work is a gather, a symmetric rank-k update and a 400 x 400
``eigvalsh``. numpy's ``eigvalsh`` keeps the GIL for most of its run, so threads of one
process do not add up (measured on 2 cores: 1.2x with two threads, 1.8x with two
processes). The resamples are split into contiguous chunks, one per core; the first runs
in the calling process and each other one in a worker process, and the results are put
back in order, so the values are the serial loop's, bit for bit.

A worker is this file run as a script (``python resample_pool.py``), reading chunks from
its stdin and writing results to its stdout as pickles. It imports only numpy, scipy and
threadpoolctl, never the caller's main module (which ``multiprocessing``'s spawn would
re-run), is safe beside torch's thread pools and a CUDA context (nothing is
forked), starts once per process and exits when its stdin closes, so a killed caller
leaves none behind. Where workers cannot start or one fails, its chunk runs in the
calling process instead.
"""
from __future__ import annotations

import atexit
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from typing import BinaryIO, List, Optional

import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

log = logging.getLogger("lcmbench")

# Below this many resamples a chunk's transfer and a worker's start cost more than they save.
PROCESS_MIN_RESAMPLES = 16
_ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

_workers: List["_Worker"] = []
_workers_failed = False
_lock = threading.Lock()


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not Linux
        return max(1, os.cpu_count() or 1)


def trace_sqrt_serial(y: np.ndarray, w: np.ndarray, shift_y: np.ndarray, tot: np.ndarray) -> np.ndarray:
    """tr sqrt(R S_b R) per resample b, one after another on one BLAS thread: the square
    roots of the eigenvalues of R S_b R = (Y_d^T C_d Y_d - tot_b s s^T) / (tot_b - 1)
    summed, with Y_d the rotated rows of the clips drawn (count c > 0) and s = shift_y_b.
    Y is centred on all clips, so s is small and the rank-one correction loses no digits."""
    dim = y.shape[1]
    out = np.empty(w.shape[0])
    with threadpool_limits(1, user_api="blas"):
        for b in range(w.shape[0]):
            drawn = np.flatnonzero(w[b])
            z = np.take(y, drawn, axis=0)
            z *= np.sqrt(w[b, drawn] / (tot[b] - 1.0))[:, None]
            if drawn.size >= dim:
                gram = z.T @ z   # numpy calls syrk for a product with its own transpose
                gram -= np.outer(shift_y[b], shift_y[b] * (tot[b] / (tot[b] - 1.0)))
            else:   # fewer clips than dimensions: the same nonzero eigenvalues from the small Gram matrix
                z -= np.sqrt(w[b, drawn] / (tot[b] - 1.0))[:, None] * shift_y[b]
                gram = z @ z.T
            # scipy's dsyevd on the matrix in place: the values numpy's eigvalsh gives, 16% sooner
            eigenvalues = scipy.linalg.eigh(gram, eigvals_only=True, driver="evd", overwrite_a=True,
                                            check_finite=False)
            out[b] = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    return out


# ------------------------------------------------------------------ pickles over pipes
def _send(stream: BinaryIO, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream: BinaryIO):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the other end closed the pipe")
    (size,) = struct.unpack("<Q", head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other end closed the pipe mid-message")
    return pickle.loads(data)


class _Worker:
    def __init__(self):
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env={**os.environ, **_ONE_THREAD})

    def compute(self, chunk) -> np.ndarray:
        _send(self.process.stdin, chunk)
        result = _receive(self.process.stdout)
        if isinstance(result, BaseException):
            raise result
        return result

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


def _close_all() -> None:
    while _workers:
        _workers.pop().close()


def _started(count: int) -> List[_Worker]:
    """``count`` workers, started on first use (fewer where they cannot start)."""
    global _workers_failed
    with _lock:
        while len(_workers) < count and not _workers_failed:
            try:
                _workers.append(_Worker())
                if len(_workers) == 1:
                    atexit.register(_close_all)
            except OSError as err:
                _workers_failed = True
                log.info("bootstrap resamples stay in this process: a worker process cannot start (%s)", err)
        return list(_workers[:count])


def trace_sqrt(y: np.ndarray, w: np.ndarray, shift_y: np.ndarray, tot: np.ndarray,
               processes: Optional[int] = None) -> np.ndarray:
    """:func:`trace_sqrt_serial`, split over ``processes`` (default: one per core)."""
    count = min(processes or cores(), w.shape[0])
    if count <= 1 or w.shape[0] < PROCESS_MIN_RESAMPLES:
        return trace_sqrt_serial(y, w, shift_y, tot)
    helpers = _started(count - 1)
    bounds = np.linspace(0, w.shape[0], len(helpers) + 2).astype(int)
    chunks = [(y, w[a:b], shift_y[a:b], tot[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    out: List[Optional[np.ndarray]] = [None] * len(chunks)
    failed: List[int] = []

    def remote(i: int) -> None:
        try:
            out[i] = helpers[i - 1].compute(chunks[i])
        except Exception as err:   # a worker died, or its chunk raised: the chunk runs (or raises) here
            log.info("a bootstrap worker process failed (%s: %s); its resamples run in this process",
                     type(err).__name__, err)
            failed.append(i)

    threads = [threading.Thread(target=remote, args=(i,), daemon=True) for i in range(1, len(chunks))]
    for t in threads:
        t.start()
    out[0] = trace_sqrt_serial(*chunks[0])
    for t in threads:
        t.join()
    if failed:
        with _lock:
            _close_all()   # the next call starts fresh workers
        for i in failed:
            out[i] = trace_sqrt_serial(*chunks[i])
    return np.concatenate(out)


def _serve() -> None:
    """A worker: compute each chunk read from stdin, write its result (or its error) to stdout."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            chunk = _receive(stdin)
        except EOFError:
            return
        try:
            result = trace_sqrt_serial(*chunk)
        except Exception as err:   # sent back: the caller raises it
            result = err
        _send(stdout, result)


if __name__ == "__main__":
    _serve()
