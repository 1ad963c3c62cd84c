"""Losses of the multi-task CI model (Alvar & Bajić, ICIP 2019, §2.2–2.3).

* :func:`compressibility_loss` — the DPCM + DCT feature compressibility loss L_r (eq 1–5).
* :class:`UncertaintyWeighting` — the uncertainty-weighted total loss (eq 6, after Kendall et al.).
* :func:`segmentation_loss`, :func:`disparity_loss`, :func:`reconstruction_loss` — the task
  losses of §2.2: cross-entropy, mean squared error on valid disparity, mean absolute error.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cilight.ci_models.precision import at_least_float32, float32_region
from cilight.errors import ConfigError

TASK_TYPES = ("classification", "regression")


@functools.lru_cache(maxsize=64)
def _dct_matrix(n: int) -> Tensor:
    """Orthonormal DCT-II matrix ``M`` (n×n) with ``M @ x`` the transform of a column ``x``."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


@functools.lru_cache(maxsize=64)
def _dpcm_matrix(n: int) -> Tensor:
    """The differencing matrix ``D`` of eq 1: ones on the diagonal, −1 on the first upper diagonal."""
    return torch.eye(n, dtype=torch.float64) - torch.diag(torch.ones(n - 1, dtype=torch.float64), 1)


@functools.lru_cache(maxsize=64)
def _compressibility_operators(height: int, width: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fold DPCM and DCT into two pairs of matrices: ``T = (M_c F A + B F M_rᵀ) / 2``.

    With ``A = D_W M_rᵀ`` and ``B = M_c D_Hᵀ``, eq 2–4 become two matrix products per side
    instead of four, and the float64 products are formed once per shape.
    """
    m_c, m_r = _dct_matrix(height), _dct_matrix(width)
    d_h, d_w = _dpcm_matrix(height), _dpcm_matrix(width)
    return m_c, d_w @ m_r.T, m_c @ d_h.T, m_r.T


@functools.lru_cache(maxsize=64)
def _operators_on(height: int, width: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
    """The operators of :func:`_compressibility_operators` in ``dtype`` on ``device``, kept: converted
    from float64 on the CPU (some devices have no float64, MPS among them) and copied to the device once,
    not in every training step."""
    return tuple(op.to(dtype=dtype).to(device) for op in _compressibility_operators(height, width))


class _AbsUnitGradAtZero(torch.autograd.Function):
    """``|x|`` whose derivative at 0 is 1, as the paper sets it (end of §2.2)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.abs()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return torch.where(x >= 0, grad, -grad)


def compressibility_loss(features: Tensor) -> Tensor:
    """Feature compressibility loss L_r (eq 1–5), averaged over the batch.

    For every channel ``F_i`` (H×W) the spatial prediction residual is
    ``Z_i = (F_i D_W + D_Hᵀ F_i) / 2`` (eq 2–3), its orthonormal 2-D DCT-II is
    ``T_i = M_c Z_i M_rᵀ`` (eq 4) and ``L_r = Σ_i ‖T_i‖₁ / (H·W·C)`` (eq 5).

    Args:
        features: ``[B, C, H, W]`` feature tensor (any H, W, C ≥ 1).

    Returns:
        A scalar: the mean of L_r over the batch, in float32 for bfloat16 or float16 features and
        under autocast (in float64 for float64 features).
    """
    if features.dim() != 4:
        raise ValueError(
            f"compressibility_loss expects features of shape [B, C, H, W], got {tuple(features.shape)}"
        )
    _, _, height, width = features.shape
    # float32 under mixed precision too (cilight.ci_models.precision): the mean of |T| over H·W·C
    # coefficients, and the products before it, lose the rate term in bfloat16's 8 significant bits
    with float32_region(features):
        features = at_least_float32(features)
        m_c, a, b, m_r_t = _operators_on(height, width, features.device, features.dtype)
        transformed = 0.5 * (m_c @ features @ a + b @ features @ m_r_t)
        return _AbsUnitGradAtZero.apply(transformed).mean(dim=(1, 2, 3)).mean()


class UncertaintyWeighting(nn.Module):
    """Uncertainty-weighted multi-task loss (eq 6).

    Each loss ``L_i`` gets a trainable weight ``w_i`` and a term that keeps the weight from
    collapsing to zero: a classification-type loss contributes ``w_i L_i + log √(1/w_i)``,
    a regression-type loss ``w_i L_i + log √(1/(2 w_i))``. The weights are parametrised by
    log-variances ``s_i = log σ_i²`` for numerical stability: ``w_i = e^{−s_i}`` for
    classification and ``w_i = e^{−s_i}/2`` for regression, so both correction terms are
    ``s_i / 2``.

    Args:
        task_types: ordered mapping from loss name to ``"classification"`` or ``"regression"``.
    """

    def __init__(self, task_types: Mapping[str, str]) -> None:
        super().__init__()
        if not task_types:
            raise ConfigError("UncertaintyWeighting needs at least one task, got none")
        for name, kind in task_types.items():
            if kind not in TASK_TYPES:
                raise ConfigError(
                    f"task type of {name!r} is {kind!r}; expected one of {', '.join(TASK_TYPES)}"
                )
        self.task_types = dict(task_types)
        self.names = tuple(task_types)
        self.log_variances = nn.Parameter(torch.zeros(len(self.names)))

    def weights(self) -> dict[str, Tensor]:
        """The current weights ``w_i`` of eq 6, by task name."""
        out = {}
        for name, s in zip(self.names, self.log_variances):
            w = torch.exp(-s)
            out[name] = w if self.task_types[name] == "classification" else 0.5 * w
        return out

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        """Total loss of eq 6 for ``losses`` (one scalar per configured task name)."""
        if set(losses) != set(self.names):
            raise ValueError(f"expected losses for {sorted(self.names)}, got {sorted(losses)}")
        weights = self.weights()
        total = self.log_variances.new_zeros(())
        for name, s in zip(self.names, self.log_variances):
            total = total + weights[name] * losses[name] + 0.5 * s
        return total


def segmentation_loss(logits: Tensor, target: Tensor, ignore_index: int = 255) -> Tensor:
    """Pixel-wise cross-entropy, ignoring ``ignore_index`` labels (L_1)."""
    return F.cross_entropy(logits, target, ignore_index=ignore_index)


def disparity_loss(prediction: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Mean squared error over valid disparity pixels (L_2); zero when none are valid."""
    valid = valid.to(prediction.dtype)
    count = valid.sum().clamp_min(1.0)
    return ((prediction - target) ** 2 * valid).sum() / count


def reconstruction_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error between the reconstructed and the input image (L_3)."""
    return F.l1_loss(prediction, target)
