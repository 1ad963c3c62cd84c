"""Real feature tensors for codec benchmarks: activations of a briefly trained cilight model.

Trains a 3-stream ``MultiTaskCI`` (ResNet-18 split at ``layer2``, ``layer3`` and ``layer4``)
on SyntheticStreets at the default 64×128 for a few epochs (~2–3 min on 2 cores), once, and
caches its checkpoint under ``benchmarks/results/cache/``. The network is fully
convolutional, so :func:`activations` then runs it on scenes rendered at the paper's
256×512 and returns the unquantized tensors at every split point — 128×32×64, 256×16×32
and 512×8×16 per image, the shapes the bit-allocation experiments code.

    python -m benchmarks.activations     # train (if needed) and print the tensor shapes
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning.pytorch as pl
import torch

from benchmarks.report import RESULTS
from cilight.ci_models import MultiTaskCI
from cilight.datamodules import SyntheticStreets, generate_sample

CACHE = RESULTS / "cache"
SPLIT_POINTS = ("layer2", "layer3", "layer4")
EPOCHS = 3


def trained_model(cache: Path = CACHE) -> MultiTaskCI:
    """The cached benchmark model, trained first if the cache is empty."""
    checkpoint = cache / f"multistream-{'-'.join(SPLIT_POINTS)}-{EPOCHS}ep.ckpt"
    if not checkpoint.exists():
        os.environ.setdefault("WANDB_MODE", "disabled")
        print(f"training the benchmark model ({EPOCHS} epochs, splits {', '.join(SPLIT_POINTS)}) ...", flush=True)
        pl.seed_everything(0, verbose=False)
        model = MultiTaskCI(backbone="resnet18", split_points=list(SPLIT_POINTS))
        trainer = pl.Trainer(max_epochs=EPOCHS, logger=False, enable_checkpointing=False,
                             default_root_dir=cache, enable_model_summary=False)
        trainer.fit(model, SyntheticStreets())
        cache.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(checkpoint)
    return MultiTaskCI.load_from_checkpoint(checkpoint, map_location="cpu").eval()


@torch.no_grad()
def activations(count: int, split: str = "test", height: int = 256, width: int = 512, first: int = 0) -> dict[str, torch.Tensor]:
    """``{split point: [count, C, H, W]}`` for scenes ``first … first+count−1`` of ``split``."""
    model = trained_model()
    images = torch.stack([
        torch.from_numpy(generate_sample(0, split, i, height, width)["image"]).float() / 255
        for i in range(first, first + count)
    ])
    return dict(zip(SPLIT_POINTS, model.features(images)))


if __name__ == "__main__":
    for name, tensor in activations(2).items():
        print(name, tuple(tensor.shape), f"mean {tensor.mean():.3f} std {tensor.std():.3f}")
