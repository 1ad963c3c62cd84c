"""What Back-and-Forth prediction saves: coded size against task accuracy, with real bytes
(Choi, Cohen & Bajić, "Back-and-forth prediction for deep tensor compression", IEEE ICASSP 2020,
§4, Fig. 3–4).

For each trained BaF setting (C channels, n bits, a channel selection) and each operating point
of a codec, every test image goes edge → container bytes → cloud:

* **BaF**: the C transmitted channels, per-channel n-bit codes tiled on a power-of-two grid
  (§3.2), fp16 bounds as side information (C·32 bits), in a cilight container; the size counted
  is the whole container. Task metrics through BaF, with and without consolidation (eq 6).
* **All channels**: the same tensor Z with all P channels at 8 bits, per-channel quantized and
  coded with the same codec — the size BaF is compared with. (Its accuracy is not measured: in a
  ResNet the block's shortcut needs the block input too, which all-channel coding of Z does not
  send; see :mod:`cilight.ci_models.baf`.)
* **Cloud-only**: the input image itself as PNG and as JPEG quality 90 (Fig. 4), and the unmodified
  model's metrics on the decoded images.
* **Unmodified**: the task model's own metrics on the same images (its Q-layer included).

:func:`measure_baf` returns :class:`BaFRow` s; :func:`write_baf` writes JSON, CSV and the plots.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

from cilight.ci_models import BaFPredictor
from cilight.ci_models.baf import quantize_channels
from cilight.ci_models.quantization import QuantizedStream
from cilight.codecs import ChannelQuantizer, Quantized, get_codec, parse_operating_point
from cilight.codecs.operating_point import OperatingPoint
from cilight.errors import ConfigError

IMAGE_CODECS = ("png", "jpeg:quality=90")  # the cloud-only references of Fig. 4
ALL_CHANNEL_BITS = 8


@dataclass(frozen=True)
class BaFRow:
    """One BaF setting at one operating point, averaged over the test images."""

    setting: str  # e.g. "C=64 n=8 correlation"
    split: str
    num_channels: int
    layer_channels: int
    bits: int
    selection: str
    codec: str
    consolidation: bool
    bits_per_image: float  # the whole container: header, fp16 bounds, payload
    all_channel_bits_per_image: float  # all P channels of Z at 8 bits, same codec
    image_bits_per_image: dict[str, float]  # the input image as PNG / JPEG q90
    image_metrics: dict[str, dict[str, float]]  # the unmodified model on those decoded images (cloud-only)
    metrics: dict[str, float]  # through BaF
    reference: dict[str, float]  # the unmodified task model
    directions: dict[str, bool]  # metric key → higher is better
    images: int
    checkpoint: str = ""
    arm: str = ""  # rows of one arm share a recipe and differ in C, n or seed (a plot line)

    @property
    def size_reduction(self) -> float:
        """1 − BaF bits / all-channel bits (the paper's "reduction in tensor size")."""
        return 1.0 - self.bits_per_image / self.all_channel_bits_per_image

    def relative_change(self, key: str) -> float:
        """(metric − unmodified) / |unmodified|, signed so that negative is worse."""
        ref = self.reference[key]
        sign = 1.0 if self.directions[key] else -1.0
        return sign * (self.metrics[key] - ref) / abs(ref) if ref else float("nan")

    @property
    def worst_change(self) -> float:
        return min(self.relative_change(k) for k in self.metrics)

    def as_dict(self) -> dict:
        return {**asdict(self), "size_reduction": self.size_reduction,
                "relative_change": {k: self.relative_change(k) for k in self.metrics}, "worst_change": self.worst_change}


def code_images(images: Tensor, points: Sequence[str] = IMAGE_CODECS) -> dict[str, tuple[float, Tensor]]:
    """``{point: (bits of all images, decoded images)}`` of ``images`` ``[B, 3, H, W]`` in [0, 1] coded
    as RGB by Pillow (PNG, or JPEG at its quality)."""
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    coded: dict[str, tuple[float, Tensor]] = {}
    for text in points:
        point = parse_operating_point(text)
        if point.codec not in ("png", "jpeg"):
            raise ConfigError(f"image codec {text!r}: expected png or jpeg:quality=Q")
        total, decoded = 0, []
        for rgb in pixels:
            buffer = io.BytesIO()
            if point.codec == "png":
                Image.fromarray(rgb).save(buffer, format="PNG", optimize=True)
            else:
                Image.fromarray(rgb).save(buffer, format="JPEG", quality=int(point.rate_options.get("quality", 90)))
            total += 8 * len(buffer.getvalue())
            buffer.seek(0)
            decoded.append(torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))).permute(2, 0, 1))
        coded[str(point)] = (float(total), torch.stack(decoded).float() / 255)
    return coded


def image_bits(images: Tensor, points: Sequence[str] = IMAGE_CODECS) -> dict[str, float]:
    """Mean bits per image of ``images`` coded as RGB images (see :func:`code_images`)."""
    return {name: bits / len(images) for name, (bits, _) in code_images(images, points).items()}


def _codec(point: OperatingPoint, bits: int):
    """The codec of BaF's per-channel codes (eq 4) on the grid that quantizer declares (§3.2)."""
    quantizer = ChannelQuantizer(bits=bits)
    return get_codec(point.codec, quantizer=quantizer, tiling=quantizer.tiling, **point.codec_options)


def _code_stream(stream: QuantizedStream, point: OperatingPoint, bits: int) -> tuple[QuantizedStream, float]:
    """Every image's stream through the codec's real bytes: ``(decoded stream, total bits)``."""
    codec = _codec(point, bits)
    codes, lows, highs, total = [], [], [], 0
    for b in range(len(stream.codes)):
        side = ChannelQuantizer.side_of(stream.minimum[b].cpu().numpy(), stream.maximum[b].cpu().numpy())
        data = codec.encode_quantized(Quantized(stream.codes[b].cpu().numpy(), side), **point.rate_options)
        total += 8 * len(data)
        _, decoded = codec.decode_quantized(data)
        low, high = ChannelQuantizer.range_of(decoded.side)  # [1, C] each: a batch of one
        codes.append(torch.from_numpy(decoded.codes))
        lows.append(torch.from_numpy(low))
        highs.append(torch.from_numpy(high))
    device = stream.codes.device
    return QuantizedStream(*(t.to(device) for t in (torch.stack(codes), torch.cat(lows), torch.cat(highs)))), float(total)


def arm_of(run_name: str) -> str:
    """The recipe a run folder name stands for: without its ``_C<c>``, ``_n<n>`` and ``_s<seed>`` parts."""
    return re.sub(r"_(C\d+|n\d+|s\d+)(?=_|$)", "", run_name) or run_name


@torch.no_grad()
def measure_baf(model: BaFPredictor, batches: Sequence[dict[str, Tensor]], codecs: Sequence[str] = ("png",),
                progress: bool = True, checkpoint: str = "", arm: str = "") -> list[BaFRow]:
    """:class:`BaFRow` s of ``model`` for every operating point in ``codecs``, with and without eq 6;
    ``arm`` names the recipe in plots (default: the selection, and ``eq 7 only`` without the shortcut term)."""
    if not batches:
        raise ConfigError("measure_baf needs at least one batch of test images")
    model = model.eval()
    points = [parse_operating_point(c) for c in codecs]
    for point in points:
        _codec(point, model.bits).check_rate(**point.rate_options)
    task_model = model.task_model
    reference_metrics = task_model.task_metrics(sync=False)
    through = {(str(p), eq6): task_model.task_metrics(sync=False) for p in points for eq6 in (True, False)}
    baf_bits = dict.fromkeys(map(str, points), 0.0)
    all_bits = dict.fromkeys(map(str, points), 0.0)
    images_bits: dict[str, float] = {}
    cloud_only: dict = {}
    count = 0
    bar = tqdm(total=sum(len(b["image"]) for b in batches) * len(points), desc="BaF", unit="image", disable=not progress)
    for batch in batches:
        images = batch["image"]
        reference_metrics.update(task_model(images), batch)
        z = model.network.layer(model.network.front(images))
        stream = quantize_channels(z.index_select(1, model.channels), model.bits)
        every_channel = quantize_channels(z, ALL_CHANNEL_BITS)
        for point in points:
            decoded, bits = _code_stream(stream, point, model.bits)
            baf_bits[str(point)] += bits
            all_bits[str(point)] += _code_stream(every_channel, point, ALL_CHANNEL_BITS)[1]
            for eq6 in (True, False):
                through[(str(point), eq6)].update(model.cloud([decoded], consolidation=eq6), batch)
            bar.update(len(images))
        for name, (bits, decoded_images) in code_images(images).items():
            images_bits[name] = images_bits.get(name, 0.0) + bits
            if name not in cloud_only:
                cloud_only[name] = task_model.task_metrics(sync=False)
            cloud_only[name].update(task_model(decoded_images), batch)
        count += len(images)
    bar.close()
    reference = {k: float(v) for k, v in reference_metrics.compute().items()}
    image_metrics = {name: {k: float(v) for k, v in m.compute().items()} for name, m in cloud_only.items()}
    directions = reference_metrics.directions
    hp = model.hparams
    setting = f"C={hp.num_channels} n={hp.bits} {hp.selection}" + ("" if hp.shortcut_weight else " eq 7 only")
    arm = arm or setting.split(" ", 2)[2]
    rows = []
    for point in points:
        for eq6 in (True, False):
            rows.append(BaFRow(
                setting=setting, split=hp.split, num_channels=hp.num_channels,
                layer_channels=model.network.layer_info.out_channels, bits=hp.bits, selection=hp.selection,
                codec=str(point), consolidation=eq6, bits_per_image=baf_bits[str(point)] / count,
                all_channel_bits_per_image=all_bits[str(point)] / count,
                image_bits_per_image={k: v / count for k, v in images_bits.items()}, image_metrics=image_metrics,
                metrics={k: float(v) for k, v in through[(str(point), eq6)].compute().items()},
                reference=reference, directions=directions, images=count, checkpoint=checkpoint, arm=arm,
            ))
    return rows


def baf_table(rows: Sequence[BaFRow]) -> str:
    """The README table: size against all-channel coding and the image, every metric's relative change."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0].metrics)
    header = ["setting", "codec", "eq 6", "kbit/image", "vs all channels", "vs PNG image", "vs JPEG q90 image",
              *[f"{k} (Δ%)" for k in keys]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        png, jpeg = (r.image_bits_per_image.get(k) for k in IMAGE_CODECS)
        cells = [r.setting, r.codec, "yes" if r.consolidation else "no", f"{r.bits_per_image / 1e3:.2f}",
                 f"−{100 * r.size_reduction:.1f}%",
                 f"{100 * (r.bits_per_image / png - 1):+.1f}%" if png else "—",
                 f"{100 * (r.bits_per_image / jpeg - 1):+.1f}%" if jpeg else "—"]
        cells += [f"{r.metrics[k]:.4g} ({100 * r.relative_change(k):+.2f})" for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    ref = rows[0]
    lines.append("| unmodified model | — | — | — | — | — | — | " + " | ".join(f"{ref.reference[k]:.4g}" for k in keys) + " |")
    for name, metrics in ref.image_metrics.items():
        lines.append(f"| cloud-only: input image as {name} | — | — | {ref.image_bits_per_image[name] / 1e3:.2f} | — | — | — | "
                     + " | ".join(f"{metrics[k]:.4g}" for k in keys) + " |")
    lines.append(f"\nall-channel coding of {ref.split} ({ref.layer_channels} channels, 8 bits): "
                 + ", ".join(f"{r.codec} {r.all_channel_bits_per_image / 1e3:.2f} kbit" for r in rows if r.consolidation)
                 + "; input image: " + ", ".join(f"{k} {v / 1e3:.2f} kbit" for k, v in ref.image_bits_per_image.items()))
    return "\n".join(lines)


def plot_baf(rows: Sequence[BaFRow], out: Path) -> list[Path]:
    """Fig. 3 (metric against C at n = 8) beside Fig. 4 (metric against kbit per image), one figure per
    metric; one line per arm and codec, points averaged over seeds (error bars: their standard deviation)."""
    rows = [r for r in rows if r.consolidation]
    files = []
    for key in rows[0].metrics if rows else ():
        fig, (ax3, ax4) = plt.subplots(1, 2, figsize=(11, 4))
        reference = rows[0].reference[key]
        for ax in (ax3, ax4):
            ax.axhline(reference, color="tab:red", lw=1, label="unmodified model")
        for (arm, codec), group in _groups(rows, lambda r: (r.arm, r.codec)).items():
            points = _groups(group, lambda r: (r.num_channels, r.bits))
            by_c = sorted((c, v) for (c, n), v in points.items() if n == 8)
            if by_c:
                ax3.errorbar([c for c, _ in by_c], [np.mean([r.metrics[key] for r in v]) for _, v in by_c],
                             [np.std([r.metrics[key] for r in v]) for _, v in by_c], marker="o", capsize=3,
                             label=f"{arm}, {codec}")
            for c in sorted({c for c, _ in points}):
                by_n = sorted((n, v) for (cc, n), v in points.items() if cc == c)
                ax4.errorbar([np.mean([r.bits_per_image for r in v]) / 1e3 for _, v in by_n],
                             [np.mean([r.metrics[key] for r in v]) for _, v in by_n],
                             [np.std([r.metrics[key] for r in v]) for _, v in by_n], marker="o", capsize=3,
                             label=f"{arm} C={c}, {codec} (n = {', '.join(str(n) for n, _ in by_n)})")
        for name, bits in rows[0].image_bits_per_image.items():
            ax4.plot([bits / 1e3], [rows[0].image_metrics[name][key]], "s", label=f"input image, {name} (cloud-only)")
        for codec, group in _groups(rows, lambda r: r.codec).items():
            ax4.axvline(group[0].all_channel_bits_per_image / 1e3, ls="--", lw=1, color="grey")
            ax4.annotate(f"all {group[0].layer_channels} channels, {codec}",
                         (group[0].all_channel_bits_per_image / 1e3, reference), rotation=90, fontsize=7, va="top")
        ax3.set_xscale("log", base=2)
        ax3.set_xlabel("transmitted channels C (n = 8)")
        ax3.set_ylabel(key)
        ax3.set_title("accuracy against C (Fig. 3)")
        ax4.set_xlabel("kbit per image (container, header and side information included)")
        ax4.set_title("accuracy against size (Fig. 4)")
        ax3.legend(fontsize=6)
        ax4.legend(fontsize=6)
        fig.tight_layout()
        path = out / f"baf_{key}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        files.append(path)
    return files


def _groups(rows, key) -> dict:
    groups: dict = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return groups


def write_baf(out: Path, rows: Sequence[BaFRow], settings: dict) -> list[Path]:
    """``baf.json`` (every row, settings), ``baf.csv`` and one plot per metric in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "baf.json").write_text(json.dumps({**settings, "rows": [r.as_dict() for r in rows]}, indent=1))
    keys = list(rows[0].metrics) if rows else []
    with open(out / "baf.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["setting", "split", "C", "P", "n", "selection", "codec", "consolidation", "bits_per_image",
                         "all_channel_bits_per_image", "size_reduction", *IMAGE_CODECS, *keys,
                         *[f"reference_{k}" for k in keys], "images", "checkpoint"])
        for r in rows:
            writer.writerow([r.setting, r.split, r.num_channels, r.layer_channels, r.bits, r.selection, r.codec,
                             r.consolidation, r.bits_per_image, r.all_channel_bits_per_image, r.size_reduction,
                             *[r.image_bits_per_image.get(k) for k in IMAGE_CODECS], *[r.metrics[k] for k in keys],
                             *[r.reference[k] for k in keys], r.images, r.checkpoint])
    return [out / "baf.json", out / "baf.csv", *plot_baf(rows, out)]


def baf_wandb_table(rows: Sequence[BaFRow]) -> tuple[list[str], list[list]]:
    keys = list(rows[0].metrics) if rows else []
    columns = ["setting", "codec", "consolidation", "bits_per_image", "size_reduction", *keys]
    return columns, [[r.setting, r.codec, r.consolidation, r.bits_per_image, r.size_reduction,
                      *[r.metrics[k] for k in keys]] for r in rows]


__all__ = ["ALL_CHANNEL_BITS", "IMAGE_CODECS", "BaFRow", "arm_of", "baf_table", "baf_wandb_table", "code_images",
           "image_bits", "measure_baf", "plot_baf", "write_baf"]
