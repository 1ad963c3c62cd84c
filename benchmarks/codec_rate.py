"""Rate accuracy and speed of the ``jpeg2000`` feature codec.

For every tensor and every target from 0.1 to 2 bits per element (log-spaced), codes the
tensor with ``get_codec("jpeg2000").encode(x, target_bits=…)`` and records the relative
error of the *whole* stream's size (container header and side information included), the
number of OpenJPEG encodes the rate search used, and encode/decode times. For comparison it
also records the error of a single encode at ``ratio = H·W / target`` (no search).

Tensors: real activations of a trained cilight model at 256×512 input (three split points,
:mod:`activations`) and smooth random fields of the same shapes.

    python -m benchmarks.codec_rate [--images 4] [--targets 16]

Writes ``benchmarks/results/codec_rate.json`` naming the machine.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.activations import activations
from benchmarks.report import RESULTS, write_result
from cilight.codecs import HEADER_BYTES, MinMaxQuantizer, TileLayout, get_codec, jpeg2000, tile


def smooth_fields(like: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Random fields with the shapes of ``like``: white noise smoothed by a random box filter."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in like.items():
        n, c, h, w = t.shape
        noise = torch.randn(n, c, h, w, generator=g)
        k = int(torch.randint(1, 6, (1,), generator=g)) * 2 + 1
        smooth = torch.nn.functional.avg_pool2d(noise, k, stride=1, padding=k // 2, count_include_pad=False)
        out[name] = smooth * torch.rand(1, c, 1, 1, generator=g) * 4 + torch.randn(1, c, 1, 1, generator=g)
    return out


def single_encode_bits(x: torch.Tensor, target_bits: float) -> int:
    """Stream bits with one OpenJPEG call at the naive ratio (what the search improves on)."""
    q = MinMaxQuantizer().quantize(x)
    image = tile(q.codes, TileLayout.square(*x.shape))
    budget = target_bits / 8 - HEADER_BYTES - q.side.nbytes
    return 8 * (len(jpeg2000.encode_codestream(image, image.size / budget)) + HEADER_BYTES + q.side.nbytes)


def measure(kind: str, tensors: dict[str, torch.Tensor], targets_bpe: np.ndarray) -> list[dict]:
    codec = get_codec("jpeg2000")
    rows = []
    calls = {"n": 0}
    encode_codestream = jpeg2000.encode_codestream

    def counting(*args):
        calls["n"] += 1
        return encode_codestream(*args)

    for split, batch in tensors.items():
        for i, x in enumerate(batch):
            for bpe in targets_bpe:
                target = float(bpe * x.numel())
                calls["n"] = 0
                jpeg2000.encode_codestream = counting
                start = time.perf_counter()
                try:
                    data = codec.encode(x, target_bits=target)
                finally:
                    jpeg2000.encode_codestream = encode_codestream
                encode_s = time.perf_counter() - start
                start = time.perf_counter()
                y = codec.decode(data)
                decode_s = time.perf_counter() - start
                rows.append({
                    "kind": kind, "split_point": split, "index": i, "shape": list(x.shape),
                    "target_bpe": float(bpe), "target_bits": target, "bits": 8 * len(data),
                    "relative_error": 8 * len(data) / target - 1,
                    "single_encode_relative_error": single_encode_bits(x, target) / target - 1,
                    "encodes": calls["n"], "encode_ms": 1e3 * encode_s, "decode_ms": 1e3 * decode_s,
                    "mse": float(((torch.from_numpy(y) - x) ** 2).mean()),
                })
            print(f"  {kind} {split} #{i}: mean |error| "
                  f"{np.mean([abs(r['relative_error']) for r in rows[-len(targets_bpe):]]):.2%}", flush=True)
    return rows


def summarize(rows: list[dict]) -> dict:
    err = np.abs([r["relative_error"] for r in rows])
    single = np.abs([r["single_encode_relative_error"] for r in rows])
    encodes = np.array([r["encodes"] for r in rows])
    return {
        "targets": len(rows),
        "mean_relative_error": float(err.mean()),
        "p90_relative_error": float(np.percentile(err, 90)),
        "max_relative_error": float(err.max()),
        "share_within_1pct": float(np.mean(err <= 0.01)),
        "single_encode_share_within_1pct": float(np.mean(single <= 0.01)),
        "encodes_per_target": float(encodes.mean()),
        "ms_per_openjpeg_encode": float(sum(r["encode_ms"] for r in rows) / encodes.sum()),
        "ms_per_encode_call": float(np.mean([r["encode_ms"] for r in rows])),
        "ms_per_decode": float(np.mean([r["decode_ms"] for r in rows])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4, help="test scenes (and random fields) per split point")
    parser.add_argument("--targets", type=int, default=16, help="log-spaced targets from 0.1 to 2 bits/element")
    parser.add_argument("--out", default=str(RESULTS / "codec_rate.json"))
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    targets = np.geomspace(0.1, 2.0, args.targets)
    real = activations(args.images)
    rows = measure("activations", real, targets) + measure("smooth_fields", smooth_fields(real, seed=1), targets)
    summary = {"all": summarize(rows)}
    for kind in ("activations", "smooth_fields"):
        summary[kind] = summarize([r for r in rows if r["kind"] == kind])
        for split in real:
            summary[f"{kind}/{split}"] = summarize([r for r in rows if r["kind"] == kind and r["split_point"] == split])
    for name, s in summary.items():
        print(f"{name:28s} mean {s['mean_relative_error']:.3%}  p90 {s['p90_relative_error']:.3%}  "
              f"within ±1% {s['share_within_1pct']:.1%} (one encode: {s['single_encode_share_within_1pct']:.1%})  "
              f"encodes {s['encodes_per_target']:.2f}  {s['ms_per_openjpeg_encode']:.1f} ms/encode  "
              f"{s['ms_per_decode']:.1f} ms/decode")
    write_result(Path(args.out), {
        "benchmark": "codec_rate",
        "codec": "jpeg2000 (OpenJPEG via Pillow, code-block 32, tolerance 1%)",
        "targets_bits_per_element": targets.tolist(),
        "summary": summary,
        "rows": rows,
    })


if __name__ == "__main__":
    main()
