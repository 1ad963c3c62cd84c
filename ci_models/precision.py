"""What stays in float32 when a model trains in mixed precision.

``--trainer.precision bf16-mixed`` (or ``16-mixed``) makes Lightning run every training and
evaluation step under :func:`torch.autocast`: convolutions and matrix products run in bfloat16
(8 significant bits) while the weights stay float32. That suits the encoder and the task heads.
It does not suit what models the channel, which is float32 wherever cilight computes it:

* the Q-layer's training noise (Alvar & Bajić, IEEE ICIP 2019, §2.1) is one quantization step
  ``Δ = (max − min) / 255`` at 8 bits — the spacing of bfloat16 numbers near ``max``: added in
  bfloat16, most of the noise is rounded away. The layer itself computes in float32 (used alone
  under autocast it returns float32), and every transmission runs in float32
  (:meth:`~cilight.ci_models.MultiTaskCI.run`); the cloud half's first convolution casts its
  output back;
* the rate terms are sums over every element of a stream: L_r (eq 1–5) of ``|T|`` over
  ``H·W·C`` DCT coefficients, the JPEG2000 proxy's bits over every DWT coefficient, a learned
  bottleneck's ``Σ −log₂ p``. Their matrix products and sums run in float32
  (:func:`~cilight.ci_models.losses.compressibility_loss`, :class:`~cilight.ci_models.proxy.Jpeg2000Proxy`);
* CompressAI's entropy models (Ballé et al., ICLR 2018) compute their cumulative densities with
  matrix products, which autocast would run in bfloat16: the likelihoods, the bits and the
  auxiliary loss of the quantiles run in float32 (:mod:`~cilight.ci_models.bottleneck`).

:func:`float32_region` switches autocast off on a tensor's device (where the device has
autocast); :func:`at_least_float32` upcasts a bfloat16 or float16 tensor and leaves float32 and
float64 ones as they are.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor


def float32_region(where: Tensor | torch.device | str) -> contextlib.AbstractContextManager:
    """A context in which autocast is off on the device of ``where`` (a tensor, a device or its type)."""
    if isinstance(where, Tensor):
        device_type = where.device.type
    elif isinstance(where, torch.device):
        device_type = where.type
    else:
        device_type = torch.device(where).type
    if not torch.amp.is_autocast_available(device_type):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


def at_least_float32(x: Tensor) -> Tensor:
    """``x`` in float32 if it is a floating-point tensor of fewer bits (bfloat16, float16); else ``x``."""
    if x.is_floating_point() and torch.finfo(x.dtype).bits < 32:
        return x.float()
    return x


__all__ = ["at_least_float32", "float32_region"]
