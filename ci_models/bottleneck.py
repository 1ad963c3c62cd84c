"""Learned bottlenecks at a split point: an analysis/synthesis pair and a CompressAI entropy model.

Ballé, Minnen, Singh, Hwang & Johnston, "Variational image compression with a scale hyperprior",
ICLR 2018: the latent ``y = g_a(F)`` is quantized (uniform noise in training, rounding at test),
its rate is ``R = Σ −log₂ p(ŷ)`` under a learned prior, and ``g_s(ŷ)`` restores the features the
cloud half expects. Two priors, chosen by name (:data:`BOTTLENECKS`):

* ``factorized`` — one learned density per channel (``EntropyBottleneck``, §2 of the paper);
* ``hyperprior`` — ``ŷ`` Gaussian with scales predicted from a side latent ``ẑ = Q(h_a(|y|))``
  that is itself coded with a factorized prior (``GaussianConditional``, §3, Fig. 3).

::

    factorized:  F [B,C,h,w] ─g_a─► y [B,N,h,w] ─Q─► ŷ ─g_s─► F̂ [B,C,h,w]          R = −log₂ p(ŷ)
    hyperprior:  F ─g_a─► y ─Q─► ŷ ─g_s─► F̂
                          └─|·|─h_a─► z [B,N,⌈h/2⌉,⌈w/2⌉] ─Q─► ẑ ─h_s─► σ  (scales of ŷ)
                                                                   R = −log₂ p(ŷ|σ) − log₂ p(ẑ)

Deployment codes *symbols*: ``round(y − median)`` per channel for a factorized prior, ``round(y)``
with the table index of each element's scale for the Gaussian, and the integer tables of
:class:`cilight.codecs.EntropyTables`, fixed once by :meth:`LearnedBottleneck.fix_tables`.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from cilight.ci_models.precision import at_least_float32, float32_region
from cilight.codecs.entropy import EntropyTables, compressai_module
from cilight.errors import ConfigError


def entropy_models_module():
    """``compressai.entropy_models`` (imported when a learned bottleneck is first built: see
    :func:`~cilight.codecs.entropy.compressai_module`)."""
    return compressai_module("compressai.entropy_models")


SCALE_BOUND = 0.11  # CompressAI's lower bound on a Gaussian scale
SCALE_TABLE = tuple(math.exp(v) for v in torch.linspace(math.log(SCALE_BOUND), math.log(256), 64).tolist())


@dataclass
class BottleneckOutput:
    """``features``: ``F̂`` for the cloud half; ``likelihoods``: ``p`` of every coded latent, by name."""

    features: Tensor
    likelihoods: dict[str, Tensor]

    def bits(self) -> Tensor:
        """``Σ −log₂ p`` over every latent, per sample: ``[B]``, summed in float32 (or float64) whatever the
        precision of the likelihoods and autocast (:mod:`cilight.ci_models.precision`)."""
        with float32_region(self.features):
            return sum(-torch.log2(at_least_float32(p)).flatten(1).sum(1) for p in self.likelihoods.values())


def _channel_rows(shape: tuple[int, ...]) -> Tensor:
    return torch.arange(shape[1], dtype=torch.int32).view(1, -1, 1, 1).expand(*shape)


def _medians(tables: EntropyTables, like: Tensor) -> Tensor:
    if tables.medians is None:
        raise ConfigError("entropy tables of a factorized prior must hold its medians")
    return torch.from_numpy(tables.medians.copy()).to(like.device, like.dtype).view(1, -1, 1, 1)


def scale_rows(scales: Tensor) -> Tensor:
    """The row of :data:`SCALE_TABLE` each scale is coded with: the number of table scales it exceeds
    (CompressAI's ``GaussianConditional.build_indexes``, written as one comparison so it exports)."""
    table = torch.tensor(SCALE_TABLE[:-1], dtype=scales.dtype, device=scales.device)
    return (scales.unsqueeze(-1) > table).sum(-1).to(torch.int32)


def _analysis(channels: int, latent: int) -> nn.Sequential:
    hidden = max(latent, channels // 2)
    return nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, latent, 3, padding=1))


def _synthesis(latent: int, channels: int) -> nn.Sequential:
    hidden = max(latent, channels // 2)
    return nn.Sequential(nn.Conv2d(latent, hidden, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))


class LearnedBottleneck(nn.Module, ABC):
    """Base: ``g_a``, ``g_s`` and the entropy models of one stream (``channels`` → ``latent`` → ``channels``)."""

    name: str

    def __init__(self, channels: int, latent: int) -> None:
        super().__init__()
        for what, value in (("channels", channels), ("bottleneck_channels", latent)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{what}={value!r}: expected a positive integer")
        self.channels, self.latent = channels, latent
        self.g_a = _analysis(channels, latent)
        self.g_s = _synthesis(latent, channels)

    coding_order: tuple[str, ...]  # latents in the order they are coded (a hyperprior's z before y)
    hyper_rows: tuple[str, ...] = ()  # latents whose table rows come from a decoded latent (the hyper-decoder)

    @abstractmethod
    def entropy_models(self) -> dict[str, nn.Module]:
        """The CompressAI entropy model of every coded latent, by name."""

    def aux_loss(self) -> Tensor:
        """CompressAI's auxiliary loss of the factorized priors (their quantiles), for its own optimizer; in
        float32 under autocast too (its cumulative densities are matrix products)."""
        with float32_region(self.g_a[0].weight):
            return sum(m.loss() for m in self.entropy_models().values()
                       if isinstance(m, entropy_models_module().EntropyBottleneck))

    def aux_parameters(self) -> list[nn.Parameter]:
        """The quantile parameters the auxiliary loss trains (and nothing else trains)."""
        return [m.quantiles for m in self.entropy_models().values() if isinstance(m, entropy_models_module().EntropyBottleneck)]

    def density_parameters(self) -> list[nn.Parameter]:
        """The factorized priors' density parameters (trained by the rate term at their own learning rate)."""
        aux = {id(p) for p in self.aux_parameters()}
        return [p for m in self.entropy_models().values() if isinstance(m, entropy_models_module().EntropyBottleneck)
                for p in m.parameters() if id(p) not in aux]

    def main_parameters(self) -> list[nn.Parameter]:
        aux = {id(p) for p in self.aux_parameters()}
        return [p for p in self.parameters() if id(p) not in aux]

    @torch.no_grad()
    def fix_tables(self) -> dict[str, EntropyTables]:
        """The integer CDF tables of every latent (CompressAI's ``update``), computed on a copy of each
        entropy model so that training is untouched; deployment reads only these."""
        tables = {}
        for name, model in self.entropy_models().items():
            model = copy.deepcopy(model)
            if isinstance(model, entropy_models_module().GaussianConditional):
                model.update_scale_table(SCALE_TABLE, force=True)
            else:
                # the table's range from quantiles found by bisection, not by however far the aux loss got
                # (no needless escapes), around the trained median that the model's own rounding uses
                medians = model.quantiles[:, 0, 1].clone()
                model._update_quantiles()
                model.quantiles[:, 0, 1] = medians
                model.update(force=True)
            tables[name] = EntropyTables.of(model)
        return tables

    @abstractmethod
    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        """``{latent: (N, h, w)}`` for a stream of ``height × width``, in coding order."""

    @abstractmethod
    def symbols(self, features: Tensor, tables: dict[str, EntropyTables]) -> dict[str, Tensor]:
        """Edge: the int32 symbols ``[B, N, h, w]`` of every latent."""

    @abstractmethod
    def rows(self, name: str, decoded: dict[str, Tensor], shape: tuple[int, ...],
             tables: dict[str, EntropyTables]) -> Tensor:
        """The table row of every symbol of latent ``name`` (``shape`` ``[B, N, h, w]``), from the latents
        before it in coding order alone — what the cloud has decoded when it reaches ``name``."""

    @abstractmethod
    def reconstruct(self, symbols: dict[str, Tensor], tables: dict[str, EntropyTables]) -> Tensor:
        """Cloud: ``F̂ = g_s(ŷ)`` from the symbols."""


class FactorizedBottleneck(LearnedBottleneck):
    """``ŷ`` with one learned density per channel (Ballé et al., ICLR 2018, §2)."""

    name = "factorized"

    def __init__(self, channels: int, latent: int) -> None:
        super().__init__(channels, latent)
        self.entropy_y = entropy_models_module().EntropyBottleneck(latent)

    def entropy_models(self) -> dict[str, nn.Module]:
        return {"y": self.entropy_y}

    def forward(self, features: Tensor) -> BottleneckOutput:
        y = self.g_a(features)
        with float32_region(y):  # the entropy model in float32, whatever autocast does to g_a and g_s
            y_hat, likelihood = self.entropy_y(at_least_float32(y))
        return BottleneckOutput(self.g_s(y_hat), {"y": likelihood})

    coding_order = ("y",)

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        return {"y": (self.latent, height, width)}

    def symbols(self, features: Tensor, tables: dict[str, EntropyTables]) -> dict[str, Tensor]:
        """Edge: ``round(y − median)`` per channel."""
        y = self.g_a(features)
        return {"y": torch.round(y - _medians(tables["y"], y)).to(torch.int32)}

    def rows(self, name, decoded, shape, tables) -> Tensor:
        """Every symbol's row is its channel."""
        return _channel_rows(shape)

    def reconstruct(self, symbols: dict[str, Tensor], tables: dict[str, EntropyTables]) -> Tensor:
        """Cloud: ``F̂ = g_s(symbols + median)``."""
        y = symbols["y"].to(torch.float32)
        return self.g_s(y + _medians(tables["y"], y))


class HyperpriorBottleneck(LearnedBottleneck):
    """``ŷ ~ N(0, σ²)`` with ``σ = h_s(ẑ)`` from a factorized side latent (Ballé et al., ICLR 2018, §3)."""

    name = "hyperprior"

    def __init__(self, channels: int, latent: int) -> None:
        super().__init__(channels, latent)
        self.h_a = nn.Sequential(nn.Conv2d(latent, latent, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(latent, latent, 3, stride=2, padding=1))
        self.h_s = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(latent, latent, 3, padding=1),
                                 nn.ReLU(inplace=True), nn.Conv2d(latent, latent, 3, padding=1))
        models = entropy_models_module()
        self.entropy_z = models.EntropyBottleneck(latent)
        self.gaussian_y = models.GaussianConditional(None, scale_bound=SCALE_BOUND)

    def entropy_models(self) -> dict[str, nn.Module]:
        return {"z": self.entropy_z, "y": self.gaussian_y}

    def scales(self, z_hat: Tensor, size: torch.Size) -> Tensor:
        """``σ`` at the latent's size (``h_s`` upsamples by 2; odd sizes are cropped)."""
        return torch.abs(self.h_s(z_hat)[..., : size[-2], : size[-1]])

    def forward(self, features: Tensor) -> BottleneckOutput:
        y = self.g_a(features)
        z = self.h_a(torch.abs(y))
        with float32_region(z):  # the entropy models in float32, whatever autocast does to the transforms
            z_hat, z_likelihood = self.entropy_z(at_least_float32(z))
        scales = self.scales(z_hat, y.shape)
        with float32_region(y):
            y_hat, y_likelihood = self.gaussian_y(at_least_float32(y), at_least_float32(scales))
        return BottleneckOutput(self.g_s(y_hat), {"y": y_likelihood, "z": z_likelihood})

    coding_order = ("z", "y")
    hyper_rows = ("y",)

    def latent_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        return {"z": (self.latent, (height + 1) // 2, (width + 1) // 2), "y": (self.latent, height, width)}

    def symbols(self, features: Tensor, tables: dict[str, EntropyTables]) -> dict[str, Tensor]:
        """Edge: ``round(h_a(|y|) − median)`` per channel for ``z``, ``round(y)`` for ``y``."""
        y = self.g_a(features)
        z = self.h_a(torch.abs(y))
        return {"z": torch.round(z - _medians(tables["z"], z)).to(torch.int32), "y": torch.round(y).to(torch.int32)}

    def rows(self, name, decoded, shape, tables) -> Tensor:
        """``z``: its channel; ``y``: the scale-table row of ``σ = h_s(ẑ)``, computed from the decoded
        ``z`` symbols alone, so the cloud derives the rows the edge used."""
        if name == "z":
            return _channel_rows(shape)
        return self.y_rows(decoded["z"], tables, torch.Size(shape))

    def y_rows(self, z_symbols: Tensor, tables: dict[str, EntropyTables], size: torch.Size) -> Tensor:
        """The rows of ``y`` from the ``z`` symbols (the hyper-decoder half of the cloud)."""
        z_hat = z_symbols.to(torch.float32)
        return scale_rows(self.scales(z_hat + _medians(tables["z"], z_hat), size))

    def reconstruct(self, symbols: dict[str, Tensor], tables: dict[str, EntropyTables]) -> Tensor:
        return self.g_s(symbols["y"].to(torch.float32))


BOTTLENECKS: dict[str, type[LearnedBottleneck]] = {cls.name: cls for cls in (FactorizedBottleneck, HyperpriorBottleneck)}


def make_bottleneck(name: str, channels: int, latent: int) -> LearnedBottleneck:
    """The bottleneck called ``name`` (``factorized`` or ``hyperprior``) for a stream of ``channels``."""
    if name not in BOTTLENECKS:
        raise ConfigError(f"bottleneck={name!r}: expected one of {', '.join(BOTTLENECKS)}")
    return BOTTLENECKS[name](channels, latent)


__all__ = ["BOTTLENECKS", "SCALE_TABLE", "BottleneckOutput", "FactorizedBottleneck", "HyperpriorBottleneck", "LearnedBottleneck",
           "make_bottleneck", "scale_rows"]
