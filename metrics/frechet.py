"""The Fréchet distance between Gaussians, in one place: the FVD value
(:func:`frechet_distance`) and its bootstrap resamples (:class:`FrechetToReference`,
vectorised over resampling weights) share the same covariance square root, with the
same eigenvalue thresholds, so the point value and its interval come from one code."""
from __future__ import annotations

import sys
from typing import Optional, Sequence, Union

import numpy as np
from threadpoolctl import threadpool_limits

from common.errors import InputError
from common.files import array_digest
from metrics import resample_pool

ArrayLike = Union[np.ndarray, Sequence[float], Sequence[Sequence[float]]]
_TORCH_CHUNK_BYTES = 2**30  # working-set cap of one batch of resamples on the device

# Eigenvalues below NOISE * dim * lambda_max are indistinguishable from zero in
# float64 and are zeroed (their square roots would otherwise add ~sqrt(eps) each);
# below -NEG_TOL * lambda_max the matrix is not a covariance.
_NOISE = np.finfo(np.float64).eps
_NEG_TOL = 1e-6


def psd_sqrt(sigma: np.ndarray, label: str) -> np.ndarray:
    w, v = np.linalg.eigh(sigma)
    top = max(float(np.abs(w).max()), 0.0)
    if top == 0.0:
        return np.zeros_like(sigma)
    if w.min() < -_NEG_TOL * top:
        raise InputError(f"{label} is not positive semi-definite (smallest eigenvalue {w.min():.3e}, "
                         f"largest {top:.3e}); pass a covariance matrix.")
    w = np.where(w > _NOISE * sigma.shape[0] * top, w, 0.0)
    return (v * np.sqrt(w)) @ v.T


def _check_cov(sigma, dim: int, label: str) -> np.ndarray:
    s = np.asarray(sigma, dtype=np.float64)
    if s.shape != (dim, dim):
        raise InputError(f"{label} must be [{dim}, {dim}], got {s.shape}.")
    if not np.isfinite(s).all():
        raise InputError(f"{label} contains NaN or inf.")
    scale = max(float(np.abs(s).max()), 1e-300)
    if np.abs(s - s.T).max() > 1e-8 * scale:
        raise InputError(f"{label} is not symmetric; pass a covariance matrix.")
    return (s + s.T) / 2


def _blas_one_thread():
    # 400x400 problems run fastest on one BLAS thread; several threads fight
    # torch's OpenMP pool on small machines (seconds instead of ~0.1 s).
    return threadpool_limits(1, user_api="blas")


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "svd") -> float:
    """||mu1-mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2), in float64.

    Never takes the square root of the non-symmetric product S1 S2. Both
    covariances get symmetric eigendecompositions (tiny negative eigenvalues from
    rounding clipped, clearly negative ones rejected). method "svd" (default):
    the trace term is the sum of singular values of S2^1/2 S1^1/2, whose squares
    are the eigenvalues of S1^1/2 S2 S1^1/2; it never squares the condition number.
    method "eigh": eigenvalues of S1^1/2 S2 S1^1/2 directly (same value, kept for
    cross-checking). Eigenvalues below dim * eps * lambda_max are rounding noise
    and count as zero, so rank-deficient covariances (N < dim) stay exact.
    """
    if method not in ("svd", "eigh"):
        raise InputError(f"method must be 'svd' or 'eigh', got {method!r}.")
    mu1 = np.asarray(mu1, dtype=np.float64).reshape(-1)
    mu2 = np.asarray(mu2, dtype=np.float64).reshape(-1)
    if mu1.shape != mu2.shape:
        raise InputError(f"mean vectors differ in shape: {mu1.shape} vs {mu2.shape}.")
    d = mu1.shape[0]
    s1, s2 = _check_cov(sigma1, d, "sigma1"), _check_cov(sigma2, d, "sigma2")
    if not (np.isfinite(mu1).all() and np.isfinite(mu2).all()):
        raise InputError("mean vectors contain NaN or inf.")
    with _blas_one_thread():
        r1 = psd_sqrt(s1, "sigma1")
        if method == "svd":
            r2 = psd_sqrt(s2, "sigma2")
            tr_sqrt = float(np.linalg.svd(r2 @ r1, compute_uv=False).sum())
        else:
            m = r1 @ s2 @ r1
            ev = np.linalg.eigvalsh((m + m.T) / 2)
            top = max(float(np.abs(ev).max()), 0.0)
            if top > 0 and ev.min() < -_NEG_TOL * top:
                raise InputError(f"S1^1/2 S2 S1^1/2 has a clearly negative eigenvalue {ev.min():.3e}.")
            ev = np.where(ev > _NOISE * d * top, ev, 0.0)
            tr_sqrt = float(np.sqrt(ev).sum())
    diff = mu1 - mu2
    fd = float(diff @ diff) + float(np.trace(s1)) + float(np.trace(s2)) - 2.0 * tr_sqrt
    scale = float(np.trace(s1) + np.trace(s2) + diff @ diff)
    if fd < 0:
        if fd < -1e-8 * max(scale, 1.0):
            raise RuntimeError(f"Frechet distance came out negative ({fd:.3e}); the inputs are inconsistent.")
        fd = 0.0  # rounding below zero
    return fd


class FrechetToReference:
    """Fréchet distance from the clips' feature Gaussian to fixed reference statistics.

    This is FVD when the features are I3D logits and ``(mu_ref, sigma_ref)``
    are the real-video statistics. Mean and covariance (unbiased, ddof=1) are
    accumulated in float64. The trace term uses the exact identity
    tr sqrt(S_ref^1/2 S S_ref^1/2) = sum of the square roots of the
    eigenvalues of Z^T Z (or Z Z^T, whichever is smaller), with
    Z = (X - mu) S_ref^1/2 / sqrt(N - 1): no non-symmetric square root, no
    complex parts to drop, and for N < D only an N x N eigenproblem.

    ``weighted`` evaluates many bootstrap resamples given as count rows: the
    features are centred and rotated by S_ref^1/2 once, then each resample is one
    symmetric rank-k update over the clips it drew (about 63% of them) and one
    symmetric ``eigvalsh``. Resamples run on every core (worker processes,
    :mod:`metrics.resample_pool`), or in batches on the GPU when torch is loaded and CUDA
    is present.
    """

    name = "frechet_distance"

    def __init__(self, mu_ref: ArrayLike, sigma_ref: ArrayLike):
        self.mu_ref = np.asarray(mu_ref, dtype=np.float64)
        self.sigma_ref = np.asarray(sigma_ref, dtype=np.float64)
        d = self.mu_ref.shape[0] if self.mu_ref.ndim == 1 else -1
        if self.mu_ref.ndim != 1 or self.sigma_ref.shape != (d, d):
            raise InputError(f"reference statistics must be mu [D] and sigma [D, D]; got {self.mu_ref.shape} "
                             f"and {self.sigma_ref.shape}")
        if not (np.all(np.isfinite(self.mu_ref)) and np.all(np.isfinite(self.sigma_ref))):
            raise InputError("reference statistics contain NaN or inf")
        self._root = psd_sqrt(_check_cov(self.sigma_ref, d, "sigma_ref"), "sigma_ref")
        self._trace_ref = float(np.trace(self.sigma_ref))
        self.memo_key = (self.name, array_digest(self.mu_ref, self.sigma_ref))   # its values depend on these only

    def __call__(self, x: np.ndarray) -> float:
        x = np.asarray(x, dtype=np.float64)
        return float(self.weighted(x, np.ones((1, x.shape[0])))[0])

    def weighted(self, x: np.ndarray, w: np.ndarray, device: Optional[str] = None) -> np.ndarray:
        """The statistic for each row of resampling counts ``w`` [B, N]. ``device``:
        None picks the GPU when one is in use, else the host's cores; "cpu" / "cuda"
        force a torch device (the batched path)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.mu_ref.shape[0]:
            raise InputError(f"features must be [N, {self.mu_ref.shape[0]}] to match the reference, "
                             f"got shape {x.shape}")
        n, dim = x.shape
        if n < 2:
            raise InputError("the Fréchet distance needs at least 2 clips (for a covariance)")
        w = np.atleast_2d(np.asarray(w, dtype=np.float64))
        tot = w.sum(axis=1)                       # = N for a resample
        with _blas_one_thread():
            centre = x.mean(axis=0)
            xc = x - centre                       # centred once: the second moments keep their digits
            y = xc @ self._root                   # [N, D], rotated once for all resamples
            shift = (w @ xc) / tot[:, None]       # [B, D]: resample mean - centre
            mean_term = np.sum((shift + (centre - self.mu_ref)) ** 2, axis=1)
            trace_s = (w @ np.einsum("nd,nd->n", xc, xc) - tot * np.einsum("bd,bd->b", shift, shift)) / (tot - 1.0)
            shift_y = shift @ self._root
        device = device or _gpu_in_use()
        if device is None:
            tr_sqrt = resample_pool.trace_sqrt(y, w, shift_y, tot)
        else:
            tr_sqrt = _trace_sqrt_torch(y, w, shift_y, tot, device)
        return mean_term + trace_s + self._trace_ref - 2.0 * tr_sqrt

    def straightforward(self, rows: np.ndarray) -> float:
        """The statistic computed the straightforward way on the given rows (mean,
        covariance by one GEMM, one eigvalsh of R S R): the reference the batched path
        is checked and timed against."""
        xs = np.asarray(rows, dtype=np.float64)
        mu = xs.mean(axis=0)
        xc = xs - mu
        sigma = (xc.T @ xc) / (xs.shape[0] - 1)
        ev = np.linalg.eigvalsh(self._root @ sigma @ self._root)
        return float(np.sum((mu - self.mu_ref) ** 2) + np.trace(sigma) + self._trace_ref
                     - 2.0 * np.sqrt(np.clip(ev, 0.0, None)).sum())

    def resample_loop(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """:meth:`straightforward` on each resample of drawn indices ``idx`` [B, N]."""
        x = np.asarray(x, dtype=np.float64)
        with _blas_one_thread():   # one core, as the loop it stands for
            return np.array([self.straightforward(x[rows]) for rows in idx])


def _gpu_in_use() -> Optional[str]:
    """"cuda" when this process already uses torch with a GPU; importing torch only to
    look for one would cost a CPU-only scoring run more than it saves."""
    torch = sys.modules.get("torch")
    return "cuda" if torch is not None and torch.cuda.is_available() else None


def _trace_sqrt_torch(y: np.ndarray, w: np.ndarray, shift_y: np.ndarray, tot: np.ndarray,
                      device: str) -> np.ndarray:
    """The same as :func:`metrics.resample_pool.trace_sqrt_serial`, batched over resamples with torch in float64."""
    import torch  # heavy: torch is only used when a run already has it loaded for a GPU (or a test asks)

    n, dim = y.shape
    yt = torch.from_numpy(y).to(device)
    out = np.empty(w.shape[0])
    chunk = max(1, int(_TORCH_CHUNK_BYTES // (8 * n * dim)))
    for s in range(0, w.shape[0], chunk):
        scale = torch.from_numpy(np.sqrt(w[s:s + chunk] / (tot[s:s + chunk, None] - 1.0))).to(device)
        z = (yt[None] - torch.from_numpy(shift_y[s:s + chunk]).to(device)[:, None, :]) * scale[:, :, None]
        gram = z.transpose(1, 2) @ z if n >= dim else z @ z.transpose(1, 2)
        ev = torch.linalg.eigvalsh(gram)
        out[s:s + chunk] = ev.clamp_min(0.0).sqrt().sum(dim=1).cpu().numpy()
    return out
