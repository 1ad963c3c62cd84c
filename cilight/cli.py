"""The training command line (``python train.py``), a LightningCLI with cilight's defaults.

Everything a run writes lands in one run folder ``<default_root_dir>/<run_name>/``:

::

    runs/<run_name>/
        config.yaml          resolved configuration (also sent to the W&B run config)
        checkpoints/         best-*.ckpt (lowest val/loss) and last.ckpt
        samples/             Fig. 3-style prediction grids, one PNG per validation epoch
        wandb/               W&B files (offline by default; ``wandb sync`` uploads them)
        test_metrics.json    metrics of the best checkpoint on the test split

``--ckpt_path runs/<run>/checkpoints/last.ckpt`` resumes a run into its own folder. Under DDP
the folder is chosen once, by the launching process, and handed to the workers through the
``CILIGHT_RUN_DIR`` environment variable so that all ranks agree on it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from cilight.ci_models import MultiTaskCI
from cilight.ci_models.callbacks import PredictionGrid
from cilight.errors import CilightError, ConfigError

RUN_DIR_ENV = "CILIGHT_RUN_DIR"
DEFAULT_ROOT = "runs"


class ConfigToRun(SaveConfigCallback):
    """Writes ``config.yaml`` into the run folder and sends the config to the W&B run."""

    def save_config(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_hyperparams(self.config.as_dict())


def resolve_run_dir(root: str | os.PathLike, run_name: str | None, ckpt_path: str | None) -> Path:
    """The run folder: inherited (DDP worker), the resumed checkpoint's run, or a new one."""
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    if ckpt_path:
        ckpt = Path(ckpt_path)
        if not ckpt.is_file():
            raise ConfigError(f"ckpt_path {str(ckpt)!r} does not exist; expected a checkpoint file to resume from")
        if ckpt.parent.name == "checkpoints" and run_name is None:
            return ckpt.parent.parent
    name = run_name or time.strftime("run-%Y%m%d-%H%M%S")
    run_dir = Path(root) / name
    # two runs started in the same second get distinct folders
    suffix = 1
    while run_dir.exists() and run_name is None:
        suffix += 1
        run_dir = Path(root) / f"{name}-{suffix}"
    return run_dir


class CilightCLI(LightningCLI):
    """LightningCLI for :class:`MultiTaskCI` with any LightningDataModule (default: SyntheticStreets)."""

    def __init__(self, args: Any = None, **kwargs: Any) -> None:
        super().__init__(
            MultiTaskCI,
            None,  # any LightningDataModule; the default is set in add_arguments_to_parser
            run=False,
            args=args,
            save_config_callback=ConfigToRun,
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            trainer_defaults={"default_root_dir": DEFAULT_ROOT},
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="Checkpoint to resume training from.")
        parser.add_argument("--run_name", type=str | None, default=None, help="Run folder name (default: timestamp).")
        parser.add_argument("--test_after_fit", type=bool, default=True, help="Test the best checkpoint after fit.")
        parser.add_lightning_class_args(PredictionGrid, "grid")
        parser.set_defaults({"data": {"class_path": "cilight.datamodules.SyntheticStreets"}})
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.ignore_index", "model.ignore_index", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self.config
        run_dir = resolve_run_dir(config.trainer.default_root_dir or DEFAULT_ROOT, config.run_name, config.ckpt_path)
        os.environ[RUN_DIR_ENV] = str(run_dir)
        self.run_dir = run_dir
        logger = config.trainer.logger
        if logger is None or logger is True:
            kwargs["logger"] = self._wandb_logger(run_dir)
        checkpoint = ModelCheckpoint(
            dirpath=run_dir / "checkpoints", filename="best-{epoch:03d}", monitor="val/loss", mode="min", save_last=True
        )
        callbacks = list(self.config_init.trainer.get("callbacks") or [])
        kwargs["callbacks"] = [*callbacks, checkpoint]
        kwargs["default_root_dir"] = str(run_dir)
        return super().instantiate_trainer(**kwargs)

    @staticmethod
    def _wandb_logger(run_dir: Path) -> WandbLogger:
        run_dir.mkdir(parents=True, exist_ok=True)
        # offline unless the user chose a mode; WANDB_MODE (e.g. "disabled", "online") is honoured
        options: dict[str, Any] = {} if os.environ.get("WANDB_MODE") else {"offline": True}
        run_id = run_dir.name.replace("/", "-")
        return WandbLogger(
            project=os.environ.get("WANDB_PROJECT", "cilight"),
            name=run_dir.name,
            id=run_id,
            resume="allow",
            save_dir=str(run_dir),
            **options,
        )

    def fit_and_test(self) -> dict[str, float]:
        """Fit (resuming from ``--ckpt_path``), then test the best checkpoint and report."""
        self.trainer.fit(self.model, datamodule=self.datamodule, ckpt_path=self.config.ckpt_path)
        if not self.config.test_after_fit:
            return {}
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)
        metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        if self.trainer.is_global_zero:
            (self.run_dir / "test_metrics.json").write_text(
                json.dumps({"checkpoint": best, "metrics": metrics}, indent=2) + "\n"
            )
            print(f"\nrun folder: {self.run_dir}\nbest checkpoint: {best or '(none)'}")
        return metrics


def main(args: Any = None) -> int:
    """Entry point of ``train.py``: a user error prints one line and exits with status 2."""
    try:
        cli = CilightCLI(args=args)
        cli.fit_and_test()
    except CilightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
