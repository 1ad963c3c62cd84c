"""The training command line (``python train.py``), a LightningCLI.

Every default — trainer settings, the callbacks, the model, the data — comes from
``configs/default.yaml`` (read first, then any ``--config`` and the command line), so a user
replaces or removes a callback by editing a YAML list, and the code adds none of its own. The
fragments in ``configs/callbacks/`` do that in one option (:data:`HELP` lists them, and
``python train.py --help`` prints it).

Everything a run writes lands in one run folder ``<default_root_dir>/<run_name>/``:

::

    runs/<run_name>/
        config.yaml          resolved configuration (also sent to the W&B run config)
        checkpoints/         best-*.ckpt (lowest val/loss) and last.ckpt
        samples/             Fig. 3-style prediction grids, one PNG per validation epoch
        rate_distortion/     the allocation experiment every few epochs (RateDistortionCallback)
        wandb/               W&B files (offline by default; ``wandb sync`` uploads them)
        test_metrics.json    metrics of the best checkpoint on the test split

``--ckpt_path runs/<run>/checkpoints/last.ckpt`` resumes a run into its own folder. Under DDP
the folder is chosen once, by the launching process, and handed to the workers through the
``CILIGHT_RUN_DIR`` environment variable so that all ranks agree on it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import logging
import os
import re
import shutil
import sys
import time
import traceback
import warnings
from argparse import ArgumentError
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any

import lightning.pytorch
import yaml
from jsonargparse import DefaultHelpFormatter
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

from cilight.ci_models import trivial_baselines
from cilight.ci_models.checkpoints import check_resume
from cilight.ci_models.tasks import Task
from cilight.datamodules import StreetSceneDataModule
from cilight.entrypoint import run_main
from cilight.errors import CilightError, ConfigError
from cilight.files import check_checkpoint_file, check_input_file, check_output_folder

RUN_DIR_ENV = "CILIGHT_RUN_DIR"
LIGHTNING_SOURCE = Path(lightning.pytorch.__file__).parents[1]
DEFAULT_ROOT = "runs"
# configs/ is the package data cilight.configs: the checkout's folder under an editable install, the
# installed copy otherwise (a path relative to this file would point into site-packages, beside no configs/)
DEFAULT_CONFIG = Path(files("cilight.configs").joinpath("default.yaml"))
HELP = """\
Train a split multi-task CI model on the embedded SyntheticStreets data (or any datamodule), then
test the best checkpoint. Defaults come from configs/default.yaml; every --config file, in the
order given, and then every option override them.

Callbacks: a list in a later --config replaces the whole list, so the fragments in
configs/callbacks/ change it with one option:
  --config configs/callbacks/no_rate_distortion.yaml   the defaults without the per-epoch
                                                       rate-distortion sweep (RateDistortionCallback)
  --config configs/callbacks/none.yaml                 checkpoints only: no sample grids, no sweeps
--trainer.callbacks.init_args.NAME sets an option of the last callback of the list, which in the
default list is RateDistortionCallback:
  --trainer.callbacks.init_args.every_n_epochs 4       the sweep after every 4th epoch (0: never)
  --trainer.callbacks.init_args.budgets_bpe '[0.5,2]'  other budgets (bits per element, all streams)
--trainer.callbacks+=CLASS appends a callback to the list (in a YAML file: callbacks+: [...])."""


class _HelpFormatter(DefaultHelpFormatter):
    """jsonargparse's help, with :data:`HELP`'s lines kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text == HELP:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _DropAdverts(logging.Filter):
    """Drops Lightning's "💡 Tip" advertisements, which say nothing about the run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡")


_DROP_ADVERTS = _DropAdverts()


def _quiet_known_noise() -> None:
    # Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # BaFPredictor keeps its task network in eval mode on purpose (frozen batch-norm statistics).
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode at the start of training")
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DROP_ADVERTS)  # added once, however often called


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
        ckpt = check_checkpoint_file(ckpt_path, "--ckpt_path")
        if ckpt.parent.name == "checkpoints" and run_name is None:
            return ckpt.parent.parent
    check_output_folder(root, "--trainer.default_root_dir")
    name = run_name or time.strftime("run-%Y%m%d-%H%M%S")
    run_dir = Path(root) / name
    # two runs started in the same second get distinct folders
    suffix = 1
    while run_dir.exists() and run_name is None:
        suffix += 1
        run_dir = Path(root) / f"{name}-{suffix}"
    return run_dir


_STRUCTURE = ("Parser key", "Does not validate", "Subtypes:", "Errors:", "Given value", "Problem with given class_path")


def summarize_config_error(message: str, known_options: Iterable[str] = ()) -> str:
    """One line out of a jsonargparse error: the key, the given value and what was expected.

    jsonargparse explains a failed union (``int | None``, a datamodule or ``None``) as a
    nested, bulleted list with one entry per alternative; what the user needs is the key path,
    the value and the innermost explanation that is not about ``None``. An unknown option
    gets the closest known ones.
    """
    keys = re.findall(r'Parser key "([^"]+)"', message)
    nested = re.search(r"NestedArg\(key='([^']+)', val='([^']*)'\)", message)
    unknown = re.search(r"unrecognized arguments: (\S+)", message)
    refused = re.search(r"Option '([^']+)' is not accepted", message)
    if unknown or refused:
        if unknown:
            option = unknown.group(1)
        else:
            option = "--" + ".".join([*keys, refused.group(1)])  # keys: every level down to the refusing class
            known_options = [f"--{'.'.join(keys)}.{name}" for name in _init_parameters(message)] if keys else []
        close = difflib.get_close_matches(option, list(known_options), n=2, cutoff=0.75)
        hint = f"; did you mean {' or '.join(close)}?" if close else "; see python train.py --help"
        return f"unknown option {option}{hint}"

    details = []
    for line in message.splitlines():
        line = line.strip().removeprefix("- ").strip()
        if line and not line.startswith(_STRUCTURE) and "NoneType" not in line:
            line = re.sub(r"<class '([\w.]+)'>", r"\1", line)
            details.append(re.sub(r"\b[Ee]xpected a (int|float|bool|str)\b", r"expected \1", line))
    details = list(dict.fromkeys(details)) or [" ".join(message.split())]
    value = nested.group(2) if nested else None
    got = re.search(r"\. Got value: (.*)$", details[0])
    if got:
        value, details[0] = got.group(1), details[0][: got.start()]
    elif value is None and (given := re.search(r"Given value: (.*)", message)):
        value = given.group(1).strip()
        value = None if value.startswith(("Namespace(", "NestedArg(")) else value
    if not keys:
        return "; ".join(details)
    key = ".".join(keys)
    if nested and len(keys) == 1:
        key = f"{keys[0]}.{nested.group(1)}"
    text = "; ".join(details)
    shown = f"={value!r}" if value is not None else ""
    return f"{key}{shown}: {text[0].lower()}{text[1:]}"


def _init_parameters(message: str) -> list[str]:
    """``__init__`` parameter names of the innermost class a jsonargparse message names by class path."""
    found = re.findall(r"class_path[ =]'([\w.]+)'", message)
    if not found:
        return []
    module, _, name = found[-1].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return []
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "args", "kwargs")]


class CilightCLI(LightningCLI):
    """LightningCLI for any cilight LightningModule (default :class:`MultiTaskCI`, or :class:`BaFPredictor`)
    and any LightningDataModule; defaults from ``configs/default.yaml``."""

    def __init__(self, args: Any = None, **kwargs: Any) -> None:
        if not DEFAULT_CONFIG.is_file():
            raise ConfigError(f"{DEFAULT_CONFIG} is missing; train.py reads its defaults from it")
        super().__init__(
            None,  # any LightningModule, by class path; the default (MultiTaskCI) is the config's
            None,  # any LightningDataModule; the default is the config's
            run=False,
            args=args,
            save_config_callback=ConfigToRun,
            save_config_kwargs={"overwrite": True},
            # errors come back as exceptions, which main() turns into one line
            parser_kwargs={"exit_on_error": False, "default_config_files": [str(DEFAULT_CONFIG)],
                           "description": HELP, "formatter_class": _HelpFormatter},
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="Checkpoint to resume training from.")
        parser.add_argument("--run_name", type=str | None, default=None, help="Run folder name (default: timestamp).")
        parser.add_argument("--test_after_fit", type=bool, default=True, help="Test the best checkpoint after fit.")
        parser.add_argument(
            "--baselines", type=bool, default=True,
            help="After testing, also score every task's trivial predictor (majority class, mean disparity, mean image).",
        )
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.ignore_index", "model.init_args.ignore_index", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        check_config_files(sys.argv[1:] if args is None else args)
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as err:
            options = [opt for action in parser._actions for opt in action.option_strings if opt.startswith("--")]
            raise ConfigError(summarize_config_error(str(err), options)) from None

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except CilightError:
            raise
        except (ArgumentError, ValueError, TypeError) as err:
            # a datamodule's ConfigError reaches us wrapped in jsonargparse's union explanation
            if os.environ.get("CILIGHT_DEBUG"):
                raise
            raise ConfigError(summarize_config_error(str(err))) from None

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self.config
        run_dir = resolve_run_dir(config.trainer.default_root_dir or DEFAULT_ROOT, config.run_name, config.ckpt_path)
        if config.ckpt_path:
            # the configured model must be the one saved, or Lightning answers with a page of state-dict keys
            check_resume(config.ckpt_path, self.model)
        os.environ[RUN_DIR_ENV] = str(run_dir)
        self.run_dir = run_dir
        # the topmost folder this run creates (the run's, or --trainer.default_root_dir's too), if any
        self.created_dir = next((p for p in reversed((run_dir, *run_dir.parents)) if not p.exists()), None)
        logger = config.trainer.logger
        if logger is None or logger is True:
            kwargs["logger"] = self._wandb_logger(run_dir)
        # every file of the run lands in its folder: checkpoints without a dirpath go to <run>/checkpoints
        for callback in self.config_init.trainer.get("callbacks") or []:
            if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
                callback.dirpath = str(run_dir / "checkpoints")
        kwargs["default_root_dir"] = str(run_dir)
        try:
            return super().instantiate_trainer(**kwargs)
        except BaseException:
            self.discard_unstarted_run()
            raise

    def discard_unstarted_run(self) -> None:
        """Remove the run folder this command made if no training step was taken: a run that fails
        before it starts leaves nothing behind (a resumed run's folder is never removed)."""
        trainer = getattr(self, "trainer", None)
        if getattr(self, "created_dir", None) and (trainer is None or trainer.global_step == 0):
            wandb_run = getattr(trainer, "logger", None)
            if isinstance(wandb_run, WandbLogger) and wandb_run._experiment is not None:
                wandb_run.experiment.finish()  # W&B keeps files of the run open until it is finished
            shutil.rmtree(self.created_dir, ignore_errors=True)

    @staticmethod
    def _wandb_logger(run_dir: Path) -> WandbLogger:
        run_dir.mkdir(parents=True, exist_ok=True)
        # offline unless the user chose a mode; WANDB_MODE (e.g. "disabled", "online") is honoured
        options: dict[str, Any] = {} if os.environ.get("WANDB_MODE") else {"offline": True}
        run_id = run_dir.name.replace("/", "-")
        logger = WandbLogger(
            project=os.environ.get("WANDB_PROJECT", "cilight"),
            name=run_dir.name,
            id=run_id,
            resume="allow",
            save_dir=str(run_dir),
            **options,
        )
        # WandbLogger always passes `anonymous`, which wandb 0.31 warns about on every run.
        logger._wandb_init.pop("anonymous", None)
        return logger

    def fit_and_test(self) -> dict[str, float]:
        """Fit (resuming from ``--ckpt_path``), then test the best checkpoint and report."""
        try:
            self.trainer.fit(self.model, datamodule=self.datamodule, ckpt_path=self.config.ckpt_path)
        except BaseException:
            self.discard_unstarted_run()
            raise
        if not self.config.test_after_fit:
            return {}
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)
        metrics = {k: float(v) for k, v in (results[0] if results else {}).items()}
        if self.trainer.is_global_zero:
            report: dict[str, Any] = {"checkpoint": best, "metrics": metrics}
            tasks = getattr(self.model, "tasks", ())
            if self.config.baselines and tasks and isinstance(self.datamodule, StreetSceneDataModule):
                report["trivial_baselines"] = trivial_baselines(
                    tasks, self.model.task_context, self.datamodule.sequential_loader("train"),
                    self.datamodule.sequential_loader("test"))
                print("\n" + format_comparison(tasks, metrics, report["trivial_baselines"]))
            (self.run_dir / "test_metrics.json").write_text(json.dumps(report, indent=2) + "\n")
            print(f"\nrun folder: {self.run_dir}\nbest checkpoint: {best or '(none)'}")
        return metrics


def format_comparison(tasks: tuple[Task, ...], metrics: dict[str, float], baselines: dict[str, float],
                      stage: str = "test") -> str:
    """A small table of each task's primary metric next to that of its trivial predictor."""
    rows = [("task", "metric", "model", "trivial", "trivial predictor")]
    for task in tasks:
        metric, key = task.primary, task.primary_key
        direction = "higher" if metric.higher_is_better else "lower"
        model = metrics.get(f"{stage}/{key}", float("nan"))
        predictor = getattr(task.baseline, "description", "trivial predictor")
        rows.append((task.name, f"{metric.label}, {direction} is better", f"{model:.3f}", f"{baselines[key]:.3f}",
                     predictor))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def train(args: Any = None) -> int:
    """Parse ``args`` (default: the command line), fit, test, report."""
    _quiet_known_noise()
    inherited = os.environ.get(RUN_DIR_ENV)
    try:
        CilightCLI(args=args).fit_and_test()
    except Exception as err:
        if is_lightning_user_error(err):
            raise ConfigError(f"Trainer: {lightning_message(err)}") from None
        raise
    finally:
        if inherited is None:  # a second run in this process chooses its own folder
            os.environ.pop(RUN_DIR_ENV, None)
    return 0


def is_lightning_user_error(err: BaseException) -> bool:
    """Whether Lightning refused the trainer's settings: its ``MisconfigurationException``, or a
    ``ValueError``/``TypeError``/``ImportError`` raised by Lightning's own code while checking them
    (an error inside cilight keeps its traceback)."""
    if isinstance(err, MisconfigurationException):
        return True
    if not isinstance(err, ValueError | TypeError | ImportError) or err.__traceback__ is None:
        return False
    innermost = traceback.extract_tb(err.__traceback__)[-1].filename
    return Path(innermost).is_relative_to(LIGHTNING_SOURCE)


def lightning_message(err: BaseException) -> str:
    """Lightning's message on one line, with the option a user sets when Lightning names none."""
    text = " ".join(str(err).split()).replace("`", "")
    if text.startswith("No supported gpu backend found"):
        return ("--trainer.accelerator gpu: no GPU backend found on this machine (no CUDA or MPS device); "
                "expected --trainer.accelerator cpu or auto")
    if isinstance(err, ImportError) and (accelerator := re.search(r"Requirement '([^']+)' not met", text)):
        return f"{accelerator.group(1)} is not installed, and these trainer settings need it"
    return text


def check_config_files(argv: Iterable[Any]) -> None:
    """Every ``--config FILE`` exists, is a file and is valid YAML; a syntax error names the file and its
    line (jsonargparse would name ``"<unicode string>"``). A value that is not a path (jsonargparse also
    takes inline YAML) is left to jsonargparse."""
    argv = [str(a) for a in argv]
    given = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    given += [a.partition("=")[2] for a in argv if a.startswith("--config=")]
    for value in given:
        if value.lstrip().startswith(("{", "[")) or "\n" in value or ": " in value:
            continue
        path = check_input_file(value, "--config", "a YAML file (e.g. configs/default.yaml)")
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"--config {path}:{where}: not valid YAML ({problem})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"--config {path}: not a text file; expected a YAML file") from None


def main(args: Any = None) -> int:
    """Entry point of ``train.py``: a user error prints one line and exits with status 2."""
    return run_main(train, args)
