"""Back-and-Forth (BaF) prediction: send C of a layer's P channels, predict the rest in the cloud
(H. Choi, R. A. Cohen and I. V. Bajić, "Back-and-forth prediction for deep tensor compression",
IEEE ICASSP 2020).

The network is cut inside a layer ``σ(BN(W * X))`` whose convolution has stride 2, after the batch
norm and *before* the activation (§3, eq 1). In a ResNet that layer is ``conv1 → bn1`` of the first
block of a stage (``layer2.0``, ``layer3.0``, …). The edge sends C selected channels of the BN
output Z (§3.1, eq 2–3), each quantized to n bits over its own fp16 range (§3.2, eq 4); the cloud
dequantizes them (eq 5), predicts the layer's *input* X̃ from them (backward prediction), runs the
layer's own frozen convolution and BN on X̃ (forward prediction) to get all P channels Z̃, keeps
Z̃ where it agrees with the decoded bins (consolidation, eq 6) and continues through the unmodified
rest of the network. Only the backward predictor is trained, with the Charbonnier penalty (eq 7).

::

      edge (frozen)                                              │  cloud
      image ─► front ─► X [Q,2H,2W] ─► conv1 ─► bn1 ─► Z [P,H,W] │
                                                 select C (eq 3) ─► Q_n per channel (eq 4) ─┼─► codes + fp16 (m, M)
                                                                 │        │ Q⁻¹ (eq 5)
                                                                 │        ▼
       backward: Ẑ_C ─► BN⁻¹ ─► conv3×3 ↑2 · PReLU ─► conv3×3 · PReLU ─► conv3×3 · PReLU ─► conv3×3 ─► X̃ [Q,2H,2W]
       forward:  X̃ ─► conv1 ─► bn1 (the layer's own, frozen) ─► Z̃ [P,H,W] ─► consolidate with Ẑ_C (eq 6)
       rest:     σ ─► conv2 ─► bn2 ─(+)─► σ ─► remaining blocks and stages ─► task heads ─► outputs
                                     └── downsample(X̃): the block's shortcut also needs its input, so it gets X̃

The shortcut is where a ResNet differs from the paper's YOLO-v3 layer 12, which no residual
connection passes around: a block's ``downsample`` branch reads the block *input*, which is
never sent, so the cloud feeds it the backward prediction X̃.

Choices the paper leaves open, made here:

* eq 7 is a sum over all elements; the loss here is its mean (the same minimiser, and a scale that
  does not change with batch or tensor size).
* A ResNet block's shortcut reads X̃, which eq 7 trains only through the layer's convolution. By
  default a second Charbonnier term compares the shortcut on X̃ with the shortcut on X
  (``shortcut_weight``, 1); ``0`` trains eq 7 alone. On the default model this term halves the
  accuracy lost through BaF (``benchmarks/baf.py``, arm ``eq7_only``).
* The first backward layer "employs an up-sampling operation": a 3×3 convolution to 4× the
  channels followed by a pixel shuffle (sub-pixel convolution), so that layer is a 3×3
  convolution that doubles height and width.
* Eq 6 keeps Z̃ inside the decoded bin ``[m + (k − ½)Δ, m + (k + ½)Δ]``, intersected with the
  transmitted range ``[m, M]`` (every true value lies in it, the fp16 bounds being rounded
  outwards), i.e. Z̃ is clamped to that interval.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
import torchvision
from torch import Tensor, nn

from cilight.ci_models.backbone import StreamLayout, stream_layouts
from cilight.ci_models.checkpoints import load_task_model
from cilight.ci_models.multitask import MultiTaskCI
from cilight.ci_models.precision import at_least_float32, float32_region
from cilight.ci_models.quantization import QuantizedStream
from cilight.ci_models.tasks import TaskMetrics
from cilight.ci_models.transmission import Transmission, Transmitted
from cilight.codecs.arrays import astype
from cilight.codecs.quantizers import FLOAT16_MAX, channel_bounds, code_dtype, uniform_codes, uniform_step, uniform_values
from cilight.deploy.wire import StreamWire
from cilight.errors import ConfigError

SELECTIONS = ("correlation", "first", "random")  # eq 2–3; the two ablations of the paper's choice
CHARBONNIER_EPSILON = 1e-3  # eq 7
STRIDE_PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))  # the four stride-2 offsets s of eq 2


# ----------------------------------------------------------------------------- channel selection
class ChannelCorrelation:
    """Running sums for ρ(p, q) of eq 2 over a calibration set, one batch at a time.

    ρ(p, q) = ¼ Σ_s |corr(z_p, x_{q,s})|, with z_p the p-th BN output channel and x_{q,s} the
    s-th stride-2 phase of input channel q, each vectorised over *all* samples and positions
    together. Only sums are kept (float64), so a calibration set of any size fits in memory.
    """

    def __init__(self) -> None:
        self.count = 0
        self.z_sum = self.z_sq = None
        self.x_sum = self.x_sq = self.zx = None  # per phase s: [4, Q], [4, Q], [4, P, Q]

    def update(self, z: Tensor, x: Tensor) -> ChannelCorrelation:
        """Add a batch: ``z`` ``[B, P, H, W]`` (BN output), ``x`` ``[B, Q, 2H, 2W]`` (layer input)."""
        if z.dim() != 4 or x.dim() != 4 or z.shape[0] != x.shape[0]:
            raise ConfigError(f"select_channels needs z [B, P, H, W] and x [B, Q, 2H, 2W], got {tuple(z.shape)} "
                              f"and {tuple(x.shape)}")
        if x.shape[-2:] != (2 * z.shape[-2], 2 * z.shape[-1]):
            raise ConfigError(f"x {tuple(x.shape)} must be twice the height and width of z {tuple(z.shape)} "
                              "(the layer has stride 2)")
        z, x = z.detach().cpu().double(), x.detach().cpu().double()  # float64 sums on the CPU (MPS has no float64)
        zf = z.transpose(0, 1).flatten(1)  # [P, N]
        phases = torch.stack([x[:, :, i::2, j::2].transpose(0, 1).flatten(1)
                              for i, j in STRIDE_PHASES])  # [4, Q, N]
        sums = (zf.sum(1), (zf * zf).sum(1), phases.sum(2), (phases * phases).sum(2), torch.einsum("pn,sqn->spq", zf, phases))
        if self.z_sum is None:
            self.z_sum, self.z_sq, self.x_sum, self.x_sq, self.zx = sums
        else:
            for name, value in zip(("z_sum", "z_sq", "x_sum", "x_sq", "zx"), sums):
                setattr(self, name, getattr(self, name) + value)
        self.count += zf.shape[1]
        return self

    def rho(self) -> Tensor:
        """ρ ``[P, Q]`` of eq 2 (a constant channel has correlation 0 with everything)."""
        if self.z_sum is None:
            raise ConfigError("channel selection needs at least one calibration batch")
        n = self.count
        z_mean, x_mean = self.z_sum / n, self.x_sum / n
        cov = self.zx / n - z_mean[None, :, None] * x_mean[:, None, :]  # [4, P, Q]
        z_std = (self.z_sq / n - z_mean**2).clamp_min(0).sqrt()
        x_std = (self.x_sq / n - x_mean**2).clamp_min(0).sqrt()
        denominator = z_std[None, :, None] * x_std[:, None, :]
        corr = torch.where(denominator > 0, cov / denominator.clamp_min(1e-300), torch.zeros_like(cov))
        return corr.abs().mean(0)

    def order(self) -> Tensor:
        """All P channels by decreasing Σ_q ρ(p, q) (eq 3 applied until every channel is taken)."""
        total = self.rho().sum(1)
        return torch.sort(-total, stable=True).indices


def select_channels(z: Tensor, x: Tensor, num_channels: int) -> Tensor:
    """The ``num_channels`` BN output channels most correlated with the layer input (eq 2–3).

    ``z`` ``[B, P, H, W]`` is the BN output, ``x`` ``[B, Q, 2H, 2W]`` the layer input, over a
    calibration set; returns channel indices (int64) in decreasing order of Σ_q ρ(p, q).
    """
    order = ChannelCorrelation().update(z, x).order()
    if not 1 <= num_channels <= len(order):
        raise ConfigError(f"num_channels={num_channels}: expected 1 to {len(order)} (the layer's channels)")
    return order[:num_channels]


# ----------------------------------------------------------------------------- quantization
def quantize_channels(z: Tensor, bits: int) -> QuantizedStream:
    """Per-channel n-bit codes of ``z`` ``[B, C, H, W]`` with fp16 bounds ``[B, C]`` (eq 4)."""
    low, high = channel_bounds(z)
    if not torch.compiler.is_exporting() and not (torch.isfinite(low).all() and torch.isfinite(high).all()):
        raise ConfigError(f"per-channel range [{z.min().item():.4g}, {z.max().item():.4g}] of the BaF split does not "
                          f"fit the float16 bounds of eq 4 (|value| ≤ {FLOAT16_MAX:g})")
    levels = 2**bits - 1
    step = uniform_step(low, high, levels)
    codes = uniform_codes(z, low[..., None, None], step[..., None, None], levels)
    return QuantizedStream(astype(codes, code_dtype(bits)), low, high)


def dequantize_channels(stream: QuantizedStream, bits: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(Ẑ, m, Δ)`` of eq 5: dequantized values ``[B, C, H, W]``, lower bounds and steps ``[B, C, 1, 1]``."""
    levels = 2**bits - 1
    low = stream.minimum[..., None, None]
    step = uniform_step(low, stream.maximum[..., None, None], levels)
    return uniform_values(stream.codes.float(), low, step), low, step


def consolidate(prediction: Tensor, decoded: Tensor, low: Tensor, step: Tensor, levels: int) -> Tensor:
    """Eq 6: keep ``prediction`` where it falls in the decoded value's quantizer bin, else the
    bin's nearest boundary — a clamp to ``[Ẑ − Δ/2, Ẑ + Δ/2] ∩ [m, m + levels·Δ]``."""
    lower = torch.maximum(decoded - step / 2, low)
    upper = torch.minimum(decoded + step / 2, low + levels * step)
    return torch.minimum(torch.maximum(prediction, lower), upper)


def charbonnier(target: Tensor, prediction: Tensor, epsilon: float = CHARBONNIER_EPSILON) -> Tensor:
    """Eq 7, as a mean over elements: ``mean √((Y − σ(Z̃))² + ε²)``, in float32 whatever the inputs (under
    ``bf16-mixed`` they come from bfloat16 convolutions; a mean over every element wants float32)."""
    with float32_region(prediction):
        target, prediction = at_least_float32(target), at_least_float32(prediction)
        return torch.sqrt((target - prediction) ** 2 + epsilon**2).mean()


# ----------------------------------------------------------------------------- the cut network
@dataclass(frozen=True)
class BaFLayer:
    """Where BaF cuts: block ``block`` of stage ``stage`` (``layer3.0``), after its ``bn1``."""

    name: str
    stage: str
    block: int
    in_channels: int  # Q
    out_channels: int  # P

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.out_channels < 1:
            raise ConfigError(f"BaF layer {self.name!r} needs positive channel counts")


def find_layer(stages: Mapping[str, nn.Module], name: str) -> BaFLayer:
    """The stride-2 ``conv1 + bn1`` named ``name`` (``<stage>.<block>``) among ``stages``, or one clear error."""
    stage, _, index = str(name).partition(".")
    if stage not in stages or not index.isdigit() or int(index) >= len(stages[stage]):
        options = [f"{s}.{i}" for s, blocks in stages.items() for i in range(len(blocks))]
        raise ConfigError(f"split={name!r}: expected a block of this network, one of {', '.join(options)}")
    block = stages[stage][int(index)]
    conv, bn = getattr(block, "conv1", None), getattr(block, "bn1", None)
    stride = tuple(getattr(conv, "stride", ()))
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d) or stride != (2, 2) or not hasattr(block, "relu"):
        raise ConfigError(f"split={name!r}: BaF needs a block whose conv1 has stride 2 followed by bn1 and an "
                          f"activation (the first block of layer2, layer3 or layer4 of a basic-block ResNet); "
                          f"{name} has conv1 stride {stride or 'none'}")
    return BaFLayer(name, stage, int(index), conv.in_channels, conv.out_channels)


class SplitResNet(nn.Module):
    """A ResNet cut before the activation of one stride-2 block's ``bn1`` (frozen; no parameters trained).

    ``front(images) → X`` (the block input), ``layer(X) → Z`` (conv1 + bn1), ``back(Z, X̃)`` → the
    network's outputs, with the block's shortcut fed X̃. ``head`` maps ``{stage name: output}`` of
    the stages computed after the cut to the outputs (a dict keyed by task).
    """

    def __init__(self, stem: nn.Module, stages: Mapping[str, nn.Module], split: str,
                 head: Callable[[dict[str, Tensor]], dict[str, Tensor]], last_stage: str | None = None) -> None:
        super().__init__()
        self.layer_info = find_layer(stages, split)
        names = list(stages)
        last = names.index(last_stage) if last_stage else len(names) - 1
        if names.index(self.layer_info.stage) > last:
            raise ConfigError(f"split={split!r} lies after the network's last computed stage {names[last]!r}")
        self.stem = stem
        self.stages = nn.ModuleDict({n: stages[n] for n in names[: last + 1]})
        self.head = head
        self.requires_grad_(False)

    @property
    def block(self) -> nn.Module:
        return self.stages[self.layer_info.stage][self.layer_info.block]

    def front(self, images: Tensor) -> Tensor:
        """The split block's input X."""
        x = self.stem(images)
        for name, stage in self.stages.items():
            if name == self.layer_info.stage:
                for block in list(stage)[: self.layer_info.block]:
                    x = block(x)
                return x
            x = stage(x)
        raise AssertionError("unreachable: the split stage is one of the stages")

    def layer(self, x: Tensor) -> Tensor:
        """Z = BN(W * X): the tensor the edge cuts (before the activation)."""
        return self.block.bn1(self.block.conv1(x))

    def shortcut(self, x: Tensor) -> Tensor:
        """The split block's residual branch on its input (``downsample``, or the identity)."""
        return self.block.downsample(x) if self.block.downsample is not None else x

    def tail(self, z: Tensor, x_tilde: Tensor) -> Tensor:
        """The rest of the split block from Z (all P channels), with the shortcut fed X̃: the block's output."""
        block = self.block
        out = block.bn2(block.conv2(block.relu(z)))
        return block.relu(out + self.shortcut(x_tilde))

    def rest(self, x: Tensor) -> dict[str, Tensor]:
        """The network after the split block, from the block's output."""
        outputs: dict[str, Tensor] = {}
        started = False
        for name, stage in self.stages.items():
            if name == self.layer_info.stage:
                for later in list(stage)[self.layer_info.block + 1:]:
                    x = later(x)
                started = True
            elif started:
                x = stage(x)
            else:
                continue
            outputs[name] = x
        return self.head(outputs)

    def back(self, z: Tensor, x_tilde: Tensor) -> dict[str, Tensor]:
        """The rest of the network from Z (all P channels), with the shortcut fed X̃."""
        return self.rest(self.tail(z, x_tilde))

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """The unmodified network through the cut (Z and X exact): ``back(layer(X), X)``."""
        x = self.front(images)
        return self.back(self.layer(x), x)


class _TaskHead(nn.Module):
    """The cloud decoder of a :class:`MultiTaskCI` on its split-point streams (no Q-layer: nothing is sent there)."""

    def __init__(self, model: MultiTaskCI) -> None:
        super().__init__()
        self.decoder = model.decoder
        self.split_points = model.split_points

    def forward(self, stages: dict[str, Tensor]) -> dict[str, Tensor]:
        missing = [s for s in self.split_points if s not in stages]
        if missing:
            raise ConfigError(f"streams {missing} are computed before the BaF split; split at or before them")
        return self.decoder([stages[s] for s in self.split_points])


class _Normalize(nn.Module):
    def __init__(self, stem: nn.Module, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.stem = stem
        self.register_buffer("mean", mean.clone(), persistent=False)
        self.register_buffer("std", std.clone(), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return self.stem((images - self.mean) / self.std)


def task_model_split(model: MultiTaskCI, split: str) -> SplitResNet:
    """A trained :class:`MultiTaskCI` cut at ``split``, which must lie at or before its shallowest split point."""
    encoder = model.encoder
    layer = find_layer(encoder.stages, split)
    stages = list(encoder.stages)
    shallowest = stages.index(model.split_points[0])
    if stages.index(layer.stage) > shallowest:
        raise ConfigError(f"split={split!r} lies after the model's split point {model.split_points[0]!r}; "
                          f"BaF cuts the edge half, so choose a block of {', '.join(stages[: shallowest + 1])}")
    return SplitResNet(_Normalize(encoder.stem, encoder.mean, encoder.std), encoder.stages, split, _TaskHead(model),
                       last_stage=model.split_points[-1])


class _Classifier(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.avgpool, self.fc = net.avgpool, net.fc

    def forward(self, stages: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"classification": self.fc(torch.flatten(self.avgpool(stages["layer4"]), 1))}


def resnet_split(net: torchvision.models.ResNet, split: str) -> SplitResNet:
    """Any torchvision (basic-block) ResNet cut at ``split``; the output is ``{"classification": logits}``."""
    if not isinstance(net, torchvision.models.ResNet):
        raise ConfigError(f"resnet_split needs a torchvision ResNet, got {type(net).__name__}")
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    stages = {name: getattr(net, name) for name in ("layer1", "layer2", "layer3", "layer4")}
    return SplitResNet(stem, stages, split, _Classifier(net))


# ----------------------------------------------------------------------------- the trainable part
class BackwardPredictor(nn.Module):
    """Fig. 2 after BN⁻¹: four 3×3 convolutions, PReLU after all but the last, the first one ↑2.

    ``[B, C, H, W]`` (the transmitted channels, BN undone) → X̃ ``[B, Q, 2H, 2W]``.
    """

    def __init__(self, channels: int, in_channels: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 4 * hidden, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(hidden),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.PReLU(hidden),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.PReLU(hidden),
            nn.Conv2d(hidden, in_channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def inverse_batch_norm(z: Tensor, bn: nn.BatchNorm2d, channels: Tensor) -> Tensor:
    """BN⁻¹ of ``z`` holding channels ``channels`` of ``bn``'s output (eval-mode statistics):
    ``y = (z − β)·√(σ² + ε)/γ + μ``; a γ of (almost) zero is kept away from zero."""
    gamma = bn.weight.index_select(0, channels)
    gamma = torch.where(gamma.abs() < 1e-6, torch.full_like(gamma, 1e-6), gamma)
    scale = torch.sqrt(bn.running_var.index_select(0, channels) + bn.eps) / gamma
    shape = (1, -1, 1, 1)
    return (z - bn.bias.index_select(0, channels).view(shape)) * scale.view(shape) + \
        bn.running_mean.index_select(0, channels).view(shape)


class BaFTransmission(Transmission):
    """BaF as a transmission (Choi et al., ICASSP 2020, §3): C of the split layer's P channels, each
    quantized to n bits over its own fp16 range (eq 4); the cloud dequantizes them (eq 5), predicts
    the layer input X̃ and every channel Z̃ (backward and forward prediction), keeps Z̃ inside the
    decoded bins (eq 6) and returns the split block's output, from which the network continues.

    Built by :class:`BaFPredictor` around its frozen network (:meth:`attach`, not a submodule: the
    network's weights belong to the task model), so it is not chosen by name in a config.

    Args:
        layout: the split stage, its P channels and stride.
        num_channels: C.
        bits: n (1 to 8).
        in_channels: Q, the layer input's channels.
        hidden_channels: width of the backward predictor.
    """

    wire_fields = ("codes", "minimum", "maximum")

    def __init__(self, layout: StreamLayout, num_channels: int, bits: int, in_channels: int, hidden_channels: int) -> None:
        super().__init__(layout)
        self.bits, self.consolidation = bits, True
        # filled by eq 2–3 (BaFPredictor.calibrate), then saved in the checkpoint; the other channels
        # and the inverse permutation are kept beside them so the cloud side is gathers only
        self.register_buffer("channels", torch.full((num_channels,), -1, dtype=torch.long))
        self.register_buffer("other_channels", torch.zeros(layout.channels - num_channels, dtype=torch.long))
        self.register_buffer("inverse_order", torch.zeros(layout.channels, dtype=torch.long))
        self.predictor = BackwardPredictor(num_channels, in_channels, hidden_channels)
        self._network: SplitResNet | None = None

    def attach(self, network: SplitResNet) -> None:
        """The frozen network around the split (its layer for forward prediction, the block's tail)."""
        object.__setattr__(self, "_network", network)  # a reference, not a submodule: no weights of its own

    @property
    def network(self) -> SplitResNet:
        if self._network is None:
            raise ConfigError("BaFTransmission needs the network it cuts: BaFPredictor attaches it")
        return self._network

    @property
    def calibrated(self) -> bool:
        return bool((self.channels >= 0).all())

    def set_channels(self, channels: Tensor) -> None:
        """Transmit ``channels`` (distinct indices of the split layer's P channels)."""
        channels = torch.as_tensor(channels, dtype=torch.long).cpu()
        total = self.layout.channels
        if channels.shape != self.channels.shape or len(set(channels.tolist())) != len(channels) or \
                not ((channels >= 0) & (channels < total)).all():
            raise ConfigError(f"channels {channels.tolist()[:8]}…: expected {len(self.channels)} distinct indices "
                              f"from 0 to {total - 1}")
        others = torch.tensor([c for c in range(total) if c not in set(channels.tolist())], dtype=torch.long)
        device = self.channels.device
        self.channels.copy_(channels.to(device))
        self.other_channels.copy_(others.to(device))
        self.inverse_order.copy_(torch.argsort(torch.cat([channels, others])).to(device))

    def _require_calibration(self) -> None:
        if not torch.compiler.is_exporting() and not self.calibrated:
            raise ConfigError("the BaF channels are not chosen yet: train the model (train.py) or call calibrate()")

    # --------------------------------------------------------------------- the transmission
    def transmitted(self, z: Tensor) -> Tensor:
        """The C selected channels of Z (eq 3)."""
        self._require_calibration()
        return z.index_select(1, self.channels)

    def edge(self, z: Tensor) -> QuantizedStream:
        return quantize_channels(self.transmitted(z), self.bits)

    def cloud(self, codes: Tensor, minimum: Tensor, maximum: Tensor) -> Tensor:
        self._require_calibration()
        decoded, low, step = dequantize_channels(QuantizedStream(codes, minimum, maximum), self.bits)
        x_tilde, z_tilde = self.predict(decoded)
        if self.consolidation:
            selected = consolidate(z_tilde.index_select(1, self.channels), decoded, low, step, 2**self.bits - 1)
            z_tilde = self._with_channels(z_tilde, selected)
        return self.network.tail(z_tilde, x_tilde)

    def forward(self, z: Tensor, rate: bool = True) -> Transmitted:
        """As at inference (the predictor trains on its own loss, eq 7): the block output the cloud continues from."""
        return Transmitted(self.cloud(*self.edge(z)))

    def wire(self, height: int, width: int) -> StreamWire:
        return StreamWire(shape=(len(self.channels), height, width), quantizer="channel", bits=self.bits)

    def predict(self, decoded: Tensor) -> tuple[Tensor, Tensor]:
        """``(X̃, Z̃)``: backward prediction of the layer input, forward prediction of all P channels."""
        x_tilde = self.predictor(inverse_batch_norm(decoded, self.network.block.bn1, self.channels))
        return x_tilde, self.network.layer(x_tilde)

    def _with_channels(self, z: Tensor, selected: Tensor) -> Tensor:
        """``z`` with the transmitted channels replaced by ``selected`` (gathers, which export to ONNX)."""
        return torch.cat([selected, z.index_select(1, self.other_channels)], 1).index_select(1, self.inverse_order)


BAF_LEGACY_KEYS = ("predictor.", "channels", "other_channels", "inverse_order")  # before BaFTransmission held them


def _upgrade_baf_state(state: dict) -> None:
    """A BaF checkpoint written before :class:`BaFTransmission`: its buffers and predictor move under
    ``transmissions.0.`` (in place; today's checkpoints are unchanged)."""
    weights = state.get("state_dict")
    if isinstance(weights, dict) and any(k == key or (key.endswith(".") and k.startswith(key))
                                         for k in weights for key in BAF_LEGACY_KEYS):
        state["state_dict"] = {(f"transmissions.0.{k}" if any(k == key or (key.endswith(".") and k.startswith(key))
                                                             for key in BAF_LEGACY_KEYS) else k): v
                               for k, v in weights.items()}


class BaFPredictor(pl.LightningModule):
    """Back-and-Forth prediction on a frozen, trained task model (Choi et al., ICASSP 2020, Fig. 1–2).

    Args:
        task_ckpt: a :class:`MultiTaskCI` checkpoint; its weights are copied into this model's
            checkpoint, so :meth:`load_from_checkpoint` needs nothing else.
        split: the block cut after its ``bn1``, ``<stage>.<block>`` (``layer3.0``, ``layer2.0``), at or
            before the task model's split point.
        num_channels: C, the transmitted channels (the paper's choices are powers of two).
        bits: n, bits per transmitted element (eq 4).
        selection: ``correlation`` (eq 2–3, the paper), ``first`` (channels 0 … C−1) or ``random``
            — the latter two are ablations.
        selection_seed: seed of the ``random`` selection.
        calibration_images: training images for eq 2 (the paper uses 1k).
        hidden_channels: width of the backward predictor (default: Q, the layer's input channels).
        epsilon: ε of eq 7.
        shortcut_weight: weight of a second Charbonnier term between the block's shortcut on X and on X̃
            (``downsample(X)`` vs ``downsample(X̃)``); ``0`` is eq 7 alone, as printed, which trains X̃
            only through the layer's own convolution, not where the shortcut reads it (the paper's
            layer has no shortcut). Default 1: see the module docstring.
        lr, weight_decay: Adam, cosine decay to 0 over training.
        num_classes, ignore_index: linked from the datamodule by ``train.py``; checked against the task model.
        task_hparams: the task model's hyperparameters (filled in from ``task_ckpt``; what lets a
            saved BaF checkpoint rebuild the task network without the file).
    """

    def __init__(
        self,
        task_ckpt: str | None = None,
        split: str = "layer3.0",
        num_channels: int = 64,
        bits: int = 8,
        selection: str = "correlation",
        selection_seed: int = 0,
        calibration_images: int = 1024,
        hidden_channels: int | None = None,
        epsilon: float = CHARBONNIER_EPSILON,
        shortcut_weight: float = 1.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        num_classes: int | None = None,
        ignore_index: int | None = None,
        task_hparams: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if selection not in SELECTIONS:
            raise ConfigError(f"selection={selection!r}: expected one of {', '.join(SELECTIONS)}")
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
            raise ConfigError(f"bits={bits!r}: expected an integer from 1 to 8")
        if calibration_images < 1 or lr <= 0 or epsilon <= 0:
            raise ConfigError(f"calibration_images={calibration_images}, lr={lr}, epsilon={epsilon}: expected positive values")
        if shortcut_weight < 0:
            raise ConfigError(f"shortcut_weight={shortcut_weight}: expected a weight ≥ 0")
        # built in a fresh context: LightningCLI hands its hyperparameters (a context variable) to every
        # LightningModule constructed while it instantiates this one, which would give the task model ours
        task = contextvars.Context().run(self._task_model, task_ckpt, task_hparams)
        for name, value in (("num_classes", num_classes), ("ignore_index", ignore_index)):
            if value is not None and value != task.hparams[name]:
                raise ConfigError(f"the data has {name}={value}, the task model {task_ckpt} was trained with "
                                  f"{task.hparams[name]}")
        self.save_hyperparameters(ignore=["task_hparams"])
        self.hparams["task_hparams"] = dict(task.hparams)
        self.task_model = task.eval().requires_grad_(False)
        self.network = task_model_split(task, split)
        info = self.network.layer_info
        if isinstance(num_channels, bool) or not isinstance(num_channels, int) or not 1 <= num_channels <= info.out_channels:
            raise ConfigError(f"num_channels={num_channels!r}: expected 1 to {info.out_channels} (the channels of {split})")
        stride = stream_layouts([info.stage])[0].stride
        self.transmissions = nn.ModuleList([BaFTransmission(StreamLayout(info.stage, info.out_channels, stride), num_channels,
                                                            bits, info.in_channels, hidden_channels or info.in_channels)])
        self.transmission.attach(self.network)
        if selection != "correlation":
            self.set_channels(self._fixed_channels(selection, num_channels, info.out_channels, selection_seed))
        self.val_metrics = TaskMetrics(task.tasks, task.task_context)
        self.test_metrics = TaskMetrics(task.tasks, task.task_context)

    @staticmethod
    def _task_model(task_ckpt: str | None, task_hparams: dict | None) -> MultiTaskCI:
        if task_hparams:  # weights come from this model's own checkpoint, perhaps one of the legacy layout
            return MultiTaskCI(**MultiTaskCI.upgrade_checkpoint({"hyper_parameters": dict(task_hparams)})["hyper_parameters"])
        if not task_ckpt:
            raise ConfigError("BaFPredictor needs task_ckpt: a MultiTaskCI checkpoint written by train.py")
        return load_task_model(task_ckpt)

    @staticmethod
    def _fixed_channels(selection: str, num_channels: int, total: int, seed: int) -> Tensor:
        if selection == "first":
            return torch.arange(num_channels)
        return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:num_channels].sort().values

    @property
    def transmission(self) -> BaFTransmission:
        return self.transmissions[0]

    @property
    def predictor(self) -> BackwardPredictor:
        return self.transmission.predictor

    @property
    def channels(self) -> Tensor:
        """The transmitted channels of the split layer (eq 2–3)."""
        return self.transmission.channels

    def set_channels(self, channels: Tensor) -> None:
        """Transmit ``channels`` (distinct indices of the split layer's P channels)."""
        self.transmission.set_channels(channels)

    # --------------------------------------------------------------------------- what users read
    @property
    def tasks(self):
        return self.task_model.tasks

    @property
    def task_context(self):
        return self.task_model.task_context

    @property
    def split_points(self) -> tuple[str, ...]:
        return (self.hparams.split,)

    quantizer = "channel"  # per-channel fp16 bounds (eq 4)

    @property
    def backbone(self) -> str:
        return self.task_model.hparams.backbone

    def wire_extra(self) -> dict:
        """What the halves' metadata records of BaF: the transmitted channels of the split layer."""
        return {"baf": {"split": self.hparams.split, "channels": self.channels.tolist(),
                        "layer_channels": self.network.layer_info.out_channels}}

    @property
    def bits(self) -> int:
        return self.hparams.bits

    @property
    def stride(self) -> int:
        """Input sizes must be multiples of this (the task model's deepest stride)."""
        return self.task_model.layouts[-1].stride

    def stream_shapes(self, height: int, width: int) -> dict[str, tuple[int, int, int]]:
        """``{split: (C, h, w)}``: the transmitted tensor for an input of ``height × width``."""
        stride = stream_layouts([self.network.layer_info.stage])[0].stride
        return {self.hparams.split: (self.hparams.num_channels, height // stride, width // stride)}

    @property
    def calibrated(self) -> bool:
        return self.transmission.calibrated

    # --------------------------------------------------------------------------- offline analysis
    @torch.no_grad()
    def calibrate(self, batches: Iterable[dict[str, Tensor]], images: int | None = None) -> Tensor:
        """Choose the transmitted channels by eq 2–3 on ``images`` training images; returns them."""
        images = images or self.hparams.calibration_images
        correlation, seen = ChannelCorrelation(), 0
        for batch in batches:
            x = self.network.front(batch["image"][: images - seen].to(self.device))
            correlation.update(self.network.layer(x), x)
            seen += len(x)
            if seen >= images:
                break
        chosen = correlation.order()[: self.hparams.num_channels]
        self.set_channels(chosen)
        return chosen

    def on_fit_start(self) -> None:
        if not self.calibrated:
            datamodule = self.trainer.datamodule
            loader = datamodule.sequential_loader("train") if hasattr(datamodule, "sequential_loader") else \
                datamodule.train_dataloader()
            chosen = self.calibrate(loader)
            print(f"BaF: transmitting channels {chosen[:8].tolist()}{' …' if len(chosen) > 8 else ''} of "
                  f"{self.hparams.split} (eq 2–3 on {self.hparams.calibration_images} training images)")

    def train(self, mode: bool = True) -> BaFPredictor:
        super().train(mode)
        self.task_model.eval()  # frozen: batch-norm statistics never move
        return self

    # --------------------------------------------------------------------------- the two halves
    def edge(self, images: Tensor) -> list[tuple[Tensor, ...]]:
        """Edge half: images → codes ``[B, C, h, w]`` of the selected channels and their fp16 bounds ``[B, C]``."""
        return [self.transmission.edge(self.network.layer(self.network.front(images)))]

    def cloud(self, streams: list[tuple[Tensor, ...]], consolidation: bool = True) -> dict[str, Tensor]:
        """Cloud half: the transmitted stream → BaF → (eq 6, unless ``consolidation`` is off) → the rest of
        the task network."""
        transmission = self.transmission
        transmission.consolidation = consolidation
        try:
            return self.network.rest(transmission.cloud(*streams[0]))
        finally:
            transmission.consolidation = True

    def wires(self, height: int, width: int) -> dict[str, StreamWire]:
        """``{split: how the stream crosses the network}`` for an input of ``height × width``."""
        _, h, w = self.stream_shapes(height, width)[self.hparams.split]
        return {self.hparams.split: self.transmission.wire(h, w)}

    def predict(self, decoded: Tensor) -> tuple[Tensor, Tensor]:
        """``(X̃, Z̃)``: backward prediction of the layer input, forward prediction of all P channels."""
        return self.transmission.predict(decoded)

    def forward(self, images: Tensor, consolidation: bool = True) -> dict[str, Tensor]:
        """Task outputs through the BaF split (edge quantization, prediction, eq 6), keyed by task."""
        return self.cloud(self.edge(images), consolidation)

    # --------------------------------------------------------------------------- training
    def loss(self, images: Tensor) -> Tensor:
        """Eq 7 between σ(Z) and σ(Z̃), with the transmitted channels quantized as at inference (no eq 6);
        plus ``shortcut_weight`` × the same penalty on the block's shortcut, if that is not 0."""
        with torch.no_grad():
            x = self.network.front(images)
            z = self.network.layer(x)
            with float32_region(z):  # BaF's quantizer (eq 4–5) in float32, as every transmission's
                stream = QuantizedStream(*self.transmission.edge(at_least_float32(z)))
                decoded, _, _ = dequantize_channels(stream, self.hparams.bits)
        x_tilde, z_tilde = self.predict(decoded)
        relu = self.network.block.relu
        loss = charbonnier(relu(z), relu(z_tilde), self.hparams.epsilon)
        if self.hparams.shortcut_weight > 0:
            shortcut = self.network.shortcut
            with torch.no_grad():
                target = shortcut(x)
            loss = loss + self.hparams.shortcut_weight * charbonnier(target, shortcut(x_tilde), self.hparams.epsilon)
        return loss

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch["image"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def _eval_step(self, batch: dict[str, Tensor], stage: str) -> dict[str, Tensor]:
        images = batch["image"]
        self.log(f"{stage}/loss", self.loss(images), prog_bar=stage == "val", batch_size=len(images), sync_dist=True)
        outputs = self(images)
        (self.val_metrics if stage == "val" else self.test_metrics).update(outputs, batch)
        return {k: v.detach() for k, v in outputs.items()}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self.log_dict({f"val/{k}": v for k, v in self.val_metrics.compute().items()}, prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self.log_dict({f"test/{k}": v for k, v in self.test_metrics.compute().items()})

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.predictor.parameters(), lr=self.hparams.lr,
                                     weight_decay=self.hparams.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --------------------------------------------------------------------------- checkpoints
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        _upgrade_baf_state(checkpoint)  # Lightning's own loading (load_from_checkpoint, --ckpt_path)

    @staticmethod
    def upgrade_checkpoint(state: dict) -> dict:
        """A checkpoint written before :class:`BaFTransmission`, in today's layout (see :func:`_upgrade_baf_state`)."""
        state = dict(state)
        _upgrade_baf_state(state)
        return state


__all__ = [
    "CHARBONNIER_EPSILON",
    "SELECTIONS",
    "BackwardPredictor",
    "BaFLayer",
    "BaFPredictor",
    "ChannelCorrelation",
    "SplitResNet",
    "charbonnier",
    "consolidate",
    "dequantize_channels",
    "find_layer",
    "inverse_batch_norm",
    "quantize_channels",
    "resnet_split",
    "select_channels",
    "task_model_split",
]
