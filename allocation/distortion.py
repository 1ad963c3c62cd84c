"""Task distortion and total distortion (Alvar & Bajić, IEEE TIP 2021, §III-B, §V, §VI-C).

* :func:`task_distortion` — eq 1: the percentage drop of a task metric relative to the model
  without feature compression, for metrics that rise with accuracy (mIoU, PSNR, top-1) and
  metrics that fall (RMSE).
* :func:`task_weights` — the task weights ``w`` of eq 17: given, equal (``1/k``), or inversely
  proportional to the mean task distortion over the measured rate tuples (eq 25).
* :func:`total_distortion` — eq 17: ``D_t = Σ_i w_i D_i`` at every measured rate tuple.

Eq 1 is printed as ``|Ā_i − A_i| / Ā_i × 100``. The absolute value is how the paper makes one
formula serve both directions of metric; it also counts a compressed model that happens to
score *better* than the uncompressed one as distorted, which breaks the monotonically
decreasing model of eq 2 near high rates. We keep the sign instead and take the direction
from ``higher_is_better``: the drop is positive when compression hurts, as in every entry of
Table IV, and slightly negative when it helps. The two agree whenever compression degrades the
metric (checked against Table IV in the tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cilight.errors import ConfigError

WEIGHT_SCHEMES = ("equal", "inverse-mean")


def task_distortion(metric, reference: float, *, higher_is_better: bool = True) -> np.ndarray:
    """Task distortion ``D_i`` of eq 1 in percent.

    Args:
        metric: the task metric ``A_i`` measured with compressed features (scalar or array,
            e.g. one value per rate tuple).
        reference: ``Ā_i``, the same metric without compression; positive and finite.
        higher_is_better: ``True`` for metrics that rise with accuracy (mIoU, PSNR),
            ``False`` for metrics that fall (RMSE).

    Returns:
        ``100 · (Ā − A) / Ā`` for rising metrics and ``100 · (A − Ā) / Ā`` for falling ones,
        with the shape of ``metric``.
    """
    reference = float(reference)
    if not np.isfinite(reference) or reference <= 0:
        raise ConfigError(
            f"reference metric must be positive and finite (eq 1 divides by it), got {reference!r}"
        )
    metric = np.asarray(metric, dtype=np.float64)
    if not np.all(np.isfinite(metric)):
        raise ConfigError("task metric must be finite; got NaN or infinity")
    drop = reference - metric if higher_is_better else metric - reference
    return 100.0 * drop / reference


def _as_task_matrix(distortions) -> np.ndarray:
    d = np.asarray(distortions, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] == 0 or d.shape[1] == 0:
        raise ConfigError(
            f"task distortions must be an array (M, k): M rate tuples, k tasks; got shape {d.shape}"
        )
    if not np.all(np.isfinite(d)):
        raise ConfigError("task distortions must be finite; got NaN or infinity")
    return d


def check_weights(weights: str | Sequence[float]) -> str | list[float]:
    """``weights`` as :func:`task_weights` takes them, checked before any distortion is measured:
    a scheme name, or finite, non-negative numbers that are not all zero."""
    if isinstance(weights, str):
        if weights not in WEIGHT_SCHEMES:
            raise ConfigError(f"weights must be one of {WEIGHT_SCHEMES} or one number per task, got {weights!r}")
        return weights
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not w.size or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ConfigError(f"weights must be finite, non-negative and not all zero, got {list(weights)!r}")
    return w.tolist()


def task_weights(distortions, weights: str | Sequence[float] = "equal") -> np.ndarray:
    """The task weights ``w`` (k,) of eq 17.

    Args:
        distortions: task distortions ``(M, k)``: one row per measured rate tuple, one column
            per task (only used by ``"inverse-mean"`` and to know ``k``).
        weights: ``"equal"`` (``w_i = 1/k``, Table III), ``"inverse-mean"`` (eq 25:
            ``w_i ∝ 1 / D̄_i``, normalised to sum to 1, so that the weighted mean distortions
            are equal), or ``k`` non-negative numbers used as given (not normalised: the
            bit-allocation paper's Table 2 uses ``(8, 1, 1)``). Zero weights are allowed
            (Table IV's single-task columns) as long as one weight is positive.
    """
    d = _as_task_matrix(distortions)
    k = d.shape[1]
    if isinstance(weights, str):
        if weights == "equal":
            return np.full(k, 1.0 / k)
        if weights == "inverse-mean":
            mean = d.mean(axis=0)
            if np.any(mean <= 0):
                raise ConfigError(
                    f"inverse-mean weights (eq 25) need a positive mean distortion for every task; "
                    f"got means {mean.tolist()}"
                )
            inverse = 1.0 / mean
            return inverse / inverse.sum()  # eq 25
        raise ConfigError(f"weights must be one of {WEIGHT_SCHEMES} or {k} numbers, got {weights!r}")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (k,):
        raise ConfigError(f"weights must have one entry per task ({k}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ConfigError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    return w


def total_distortion(distortions, weights: str | Sequence[float] = "equal") -> np.ndarray:
    """Total distortion ``D_t = Σ_i w_i D_i`` (eq 17) at every measured rate tuple.

    Args:
        distortions: task distortions ``(M, k)`` from :func:`task_distortion`.
        weights: as in :func:`task_weights`.

    Returns:
        ``(M,)`` total distortions, the values scalarize-first fits a surface to (§V).
    """
    d = _as_task_matrix(distortions)
    return d @ task_weights(d, weights)
