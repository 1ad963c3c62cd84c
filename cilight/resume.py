"""Resuming a run where it stopped: ``--ckpt_path runs/<run>/checkpoints/last.ckpt`` after a finished epoch or a
Ctrl-C ends at the epoch, the global step and the weights of the run that was never stopped.

:class:`ExactResume` (a callback, listed in ``configs/default.yaml`` and in the fragments of
``configs/callbacks/``) writes ``last.ckpt`` and restores it. What Lightning 2.6 alone gets wrong:

* **``last.ckpt`` is not the last epoch.** Since Lightning 2.6, ``ModelCheckpoint(save_last=True)`` writes
  ``last.ckpt`` only at a step where it also saved a top-k checkpoint (``on_train_epoch_end``: "Only save last
  checkpoint if a checkpoint was actually saved in this step"), so with ``monitor: val/loss`` and
  ``save_top_k: 1`` it is a copy of the best epoch and a resume from it repeats every epoch since.
  ExactResume writes ``last.ckpt`` after every epoch (after ``ModelCheckpoint``, being a ``Checkpoint`` too;
  the configs turn ``save_last`` off, so one callback owns the file).
* **The epoch count under ``max_steps``.** A checkpoint written in ``on_train_epoch_end`` has the fit loop's
  epoch progress "started 1, processed 1, completed 0". Without ``max_steps`` Lightning restores it as a
  finished epoch (``FitLoop.update_restart_stage``: ``RESUMED_ON_EPOCH_END``, then ``increment_completed``).
  With ``max_steps`` the ``FitLoop.restarting`` setter forces a restart for any checkpoint (``restarting and
  epoch_unfinished or self._iteration_based_training()``, lightning/pytorch/loops/fit_loop.py, Lightning PR
  #12821, meant for checkpoints written in the middle of an epoch), and this one takes the
  ``RESTARTED_ON_EPOCH_END`` branch: no batch is left, and ``FitLoop.on_advance_end`` runs the finished epoch's
  end again — ``epoch_progress.increment_processed()`` a second time, ``on_train_epoch_end`` again (where
  ``ModelCheckpoint`` finds no ``val/loss``, as no validation ran). ``processed`` stays one ahead of
  ``completed``, and ``FitLoop.done`` (``processed >= max_epochs``) ends the run an epoch early as if
  ``max_epochs`` were reached: 4 epochs of 2 steps interrupted after the first ended at step 6, not 8.
  :meth:`ExactResume.on_train_start` puts such a resume on the path Lightning takes without ``max_steps``.
* **The random draws** (the Q-layer's training noise, the proxy's rate draw, the validation loaders' seeds)
  restart from the seed: the global generators of torch, numpy and ``random`` are saved and set again when
  training resumes. A checkpoint written while a training step was under way holds them, and the module's
  buffers (batch-norm statistics, which the step's forward pass has already moved), as they were when that
  step began, since the resumed run does that step again.
* **The order of the training batches** restarts from the first epoch's: the datamodules' training loader
  shuffles with a generator of its own (:class:`TrainOrder`); the checkpoint holds the state its next pass
  draws from and the batches of the current pass already trained, which the resumed loader skips.
* **A Ctrl-C loses the epoch under way.** A ``KeyboardInterrupt`` or Lightning's ``SIGTERMException`` during
  an epoch's training steps writes ``last.ckpt`` with that epoch's progress, so the one file to resume from is
  always ``last.ckpt``. It stays as the last epoch wrote it after a crash (any other exception: the state
  after an error is not to be trusted), when no step was trained since it was written, when the interrupt
  came while the optimizer was changing the weights (a step half applied), and when it came after the
  epoch's last step (its validation or end-of-epoch callbacks, which a resume from there would skip: the
  resumed run trains that epoch again instead).

Exact in one process (CPU or one GPU) with validation at the end of epochs. Not exact: an interrupt after a
validation in the middle of an epoch (``val_check_interval`` < 1: Lightning's restart there creates the
validation iterator again, which draws from the global generator); callbacks that draw from the global
generators in ``on_train_batch_start`` (this one runs after them, so a step done again has them draw twice);
``reload_dataloaders_every_n_epochs``; DDP (Lightning's distributed sampler replaces the shuffled order, and
nothing is written on an interrupt: ranks not all in ``on_exception`` would wait for each other in
``Trainer.save_checkpoint``). A checkpoint written without this callback resumes with the right epoch count
and a warning that its draws and batch order start afresh.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint
from lightning.pytorch.loops.loop import _Loop
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import BatchSampler, Sampler

from cilight.errors import ConfigError

# Lightning warns on a mid-epoch resume when the loader is not a torch "stateful" loader; TrainOrder resumes it.
_NOT_RESUMABLE_WARNING = r"You're resuming from a checkpoint that ended before the epoch ended"


class TrainOrder:
    """Where the shuffled order of a training loader stands, so that a resumed run draws the same batches.

    ``generator`` is the loader's own: its ``RandomSampler`` draws each pass's permutation from it and the
    ``DataLoader`` draws a worker base seed from it whenever it creates an iterator (every epoch, unless workers
    persist). :class:`ResumableBatchSampler` calls :meth:`begin_pass` when a pass begins drawing, which records
    the generator's state and applies a pending :meth:`resume`.
    """

    def __init__(self) -> None:
        self.generator: torch.Generator | None = None
        self.fresh_iterator_per_epoch = True
        self.pass_start: torch.Tensor | None = None
        self._pending: tuple[torch.Tensor, int] | None = None

    def attach(self, generator: torch.Generator, fresh_iterator_per_epoch: bool) -> None:
        """A new loader shuffles with ``generator``; ``fresh_iterator_per_epoch`` is False when its workers persist
        (the ``DataLoader`` then resets its iterator instead of creating one, and draws no base seed)."""
        self.generator, self.fresh_iterator_per_epoch = generator, fresh_iterator_per_epoch
        self.pass_start = None

    def state(self, epoch_trained: bool, batches_done: int) -> dict[str, Any] | None:
        """What a resumed run needs: the state its first pass draws from and the batches that pass skips.

        ``epoch_trained``: the resumed run starts the next epoch, a new pass (after the base seed a new iterator
        draws); otherwise it continues this one, whose first ``batches_done`` batches it skips.
        """
        if self.generator is None or self.pass_start is None:
            return None
        if not epoch_trained:
            return {"generator": self.pass_start.clone(), "skip": batches_done}
        following = torch.Generator()
        following.set_state(self.generator.get_state())
        if self.fresh_iterator_per_epoch:  # what torch.utils.data.dataloader._BaseDataLoaderIter.__init__ draws
            torch.empty((), dtype=torch.int64).random_(generator=following)
        return {"generator": following.get_state(), "skip": 0}

    def resume(self, state: dict[str, Any]) -> None:
        """The next pass (of this loader or of the next one attached) draws from ``state`` and skips its batches."""
        self._pending = (state["generator"], int(state["skip"]))

    def begin_pass(self) -> int:
        """Applies a pending :meth:`resume` and records where the pass starts; returns the batches to skip."""
        if self.generator is None:
            return 0
        skip = 0
        if self._pending is not None:
            (generator_state, skip), self._pending = self._pending, None
            self.generator.set_state(generator_state)
        self.pass_start = self.generator.get_state()
        return skip


class ResumableBatchSampler(BatchSampler):
    """A ``BatchSampler`` whose passes start where :class:`TrainOrder` says, skipping the batches already trained.

    It draws what ``DataLoader(shuffle=True, generator=…, batch_size=…, drop_last=…)`` draws, so the orders of a
    run that is not resumed are unchanged. Skipped batches are index lists only: no sample is loaded for them.
    ``order`` is an ``__init__`` argument, so it survives Lightning's re-creation of batch samplers from their
    saved arguments (to inject a distributed sampler).
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool, order: TrainOrder | None = None) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.order = order

    def __iter__(self):
        # runs when a DataLoader iterator asks for its first batch, after the iterator drew its base seed
        skip = self.order.begin_pass() if self.order is not None else 0
        batches = super().__iter__()
        for _ in range(skip):
            if next(batches, None) is None:
                return
        yield from batches


def _rng_states() -> dict[str, Any]:
    """The global generators, as tensors and numbers only (checkpoints load with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    numpy = states["numpy"]
    np.random.set_state((numpy["name"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached_gaussian"]))
    python = states["python"]
    random.setstate((python["version"], tuple(python["internal"].tolist()), python["gauss_next"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ExactResume(Checkpoint):
    """Writes ``last.ckpt`` after every epoch and on a Ctrl-C, and resumes from it as if the run had never stopped
    (the module docstring says what each part fixes and why).

    A ``Checkpoint``, so Lightning calls it after the callbacks that are not, and after the ``ModelCheckpoint``
    listed before it: ``last.ckpt`` holds that epoch's best-checkpoint bookkeeping. ``dirpath``: the folder of
    ``last.ckpt``, by default the first ``ModelCheckpoint``'s (``<run>/checkpoints`` under ``train.py``) or
    ``<default_root_dir>/checkpoints``. The batch order is restored where the datamodule has a
    :class:`TrainOrder` (``train_order``), as cilight's datamodules have.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last") -> None:
        super().__init__()
        self.dirpath, self.filename = dirpath, filename
        self._trainer: pl.Trainer | None = None
        self._loaded: dict[str, Any] | None = None
        self._step_rng: dict[str, Any] | None = None  # the generators when the training step under way began
        self._step_buffers: dict[str, torch.Tensor] = {}  # the module's saved buffers then
        self._updating = False  # from the optimizer's step to the end of the batch: the weights may be half new
        self._written_step: int | None = None  # the global step last.ckpt holds, as far as this process knows
        self._training = False  # between on_train_start and on_train_end: what an interrupt may write

    @property
    def path(self) -> Path:
        return Path(self.dirpath or ".") / f"{self.filename}{ModelCheckpoint.FILE_EXTENSION}"

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer
        if stage != "fit":
            return
        checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
        if self.dirpath is None:
            first = checkpoints[0].dirpath if checkpoints else None
            self.dirpath = first or str(Path(trainer.default_root_dir) / "checkpoints")
        for callback in checkpoints:
            if callback.save_last and Path(callback.dirpath or "").resolve() == Path(self.dirpath).resolve():
                raise ConfigError(f"ModelCheckpoint(save_last={callback.save_last!r}) and {type(self).__name__} would "
                                  f"both write {self.path}: set save_last: false on the ModelCheckpoint (Lightning "
                                  "2.6 writes last.ckpt only with a new best checkpoint)")
        if _train_order(trainer) is not None:
            warnings.filterwarnings("ignore", message=_NOT_RESUMABLE_WARNING)

    # -- the checkpoint's state --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        trainer = self._trainer
        if trainer is None or trainer.state.fn != TrainerFn.FITTING:
            return {}
        batches = trainer.fit_loop.epoch_loop.batch_progress.current
        step_under_way = batches.started > batches.processed  # the resumed run trains this batch again
        rng = self._step_rng if step_under_way and self._step_rng is not None else _rng_states()
        state: dict[str, Any] = {"rng": rng}
        order = _train_order(trainer)
        if order is not None:
            state["train_order"] = order.state(_batches_trained(trainer), batches.processed)
        return state

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        batches = trainer.fit_loop.epoch_loop.batch_progress.current
        if trainer.state.fn == TrainerFn.FITTING and batches.started > batches.processed and self._step_buffers:
            # the step under way moved the batch-norm statistics in its forward pass; the resumed run moves them again
            weights = checkpoint["state_dict"]
            weights.update({name: value for name, value in self._step_buffers.items() if name in weights})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._loaded = state_dict or None
        order = _train_order(self._trainer)
        if order is not None and self._loaded and self._loaded.get("train_order"):
            order.resume(self._loaded["train_order"])  # before the training loader draws its first batch

    # -- resuming ----------------------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        fit_loop = trainer.fit_loop
        epoch = fit_loop.epoch_progress.current
        if fit_loop.restarting and 0 < epoch.started <= epoch.processed and _batches_trained(trainer):
            # Only max_steps makes Lightning restart an epoch whose batches are all trained (see the module
            # docstring): count it as completed and start the next one, as Lightning does for the same checkpoint
            # without max_steps, instead of running that epoch's end again and counting the epoch twice.
            if epoch.completed < epoch.processed:
                fit_loop.epoch_progress.increment_completed()
            _Loop.restarting.fset(fit_loop, False)  # the parent setter: the fit loop and its epoch and val loops
            for loop in (fit_loop, fit_loop.epoch_loop, fit_loop.epoch_loop.val_loop):
                loop.reset_restart_stage()
        if self._loaded is not None and "rng" in self._loaded:
            _set_rng_states(self._loaded["rng"])
        elif trainer.ckpt_path:
            rank_zero_warn(f"{trainer.ckpt_path} holds no state of {type(self).__name__} (an older checkpoint, or a run "
                           "without it): the resumed run counts its epochs and steps right, but its random draws and "
                           "batch order start afresh, so its weights differ from those of a run that never stopped")
        self._loaded = None
        self._written_step = trainer.global_step if trainer.ckpt_path else None
        self._training = True

    # -- the step under way ------------------------------------------------------------------------

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self._step_rng = _rng_states()
        self._step_buffers = {name: buffer.detach().clone() for name, buffer in pl_module.named_buffers()}

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self._updating = True

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._updating = False

    # -- writing last.ckpt -------------------------------------------------------------------------

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._training = False
        if self._written_step != trainer.global_step:
            self._write(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt | SIGTERMException):
            return
        if not self._training or trainer.sanity_checking or trainer.world_size > 1:
            return  # before training resumed, last.ckpt already holds the state; under DDP see the module docstring
        kept = f"{self.path} is unchanged" if self.path.is_file() else f"{self.path} was not written"
        if trainer.global_step == (self._written_step or 0):
            rank_zero_info(f"Interrupted with no training step since the last checkpoint: {kept}.")
            return
        if _batches_trained(trainer):
            rank_zero_info(f"Interrupted after the last training step of epoch {trainer.current_epoch} (validation or "
                           f"end-of-epoch callbacks): {kept}, and a resumed run trains that epoch again.")
            return
        if self._updating:
            rank_zero_warn(f"Interrupted while the optimizer was changing the weights: {kept}.")
            return
        self._write(trainer)
        batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        rank_zero_info(f"Interrupted in epoch {trainer.current_epoch} at global step {trainer.global_step} ({batches} of "
                       f"{trainer.num_training_batches} batches of the epoch trained): saved {self.path}; "
                       f"--ckpt_path {self.path} resumes from there.")

    def _write(self, trainer: pl.Trainer) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # the whole state (and no log line saying so)
        self._written_step = trainer.global_step


def _train_order(trainer: pl.Trainer | None) -> TrainOrder | None:
    order = getattr(getattr(trainer, "datamodule", None), "train_order", None)
    return order if isinstance(order, TrainOrder) else None


def _batches_trained(trainer: pl.Trainer) -> bool:
    """Whether the current epoch has trained all its batches (its validation or its end may still be under way).

    A resumed run then draws its next batch from the next pass of the loader, whichever way Lightning restarts:
    the next epoch (a checkpoint written at the epoch's end), or the end of this one without its batches (one
    written during its validation). Otherwise it continues this pass (a checkpoint written between its steps,
    or where ``max_steps`` stopped the run)."""
    batches = trainer.fit_loop.epoch_loop.batch_progress
    last_fetched_and_done = batches.is_last_batch and batches.current.completed == batches.current.ready
    return trainer.fit_loop.epoch_progress.current.started > 0 and (
        last_fetched_and_done or batches.current.completed >= trainer.num_training_batches)


__all__ = ["ExactResume", "ResumableBatchSampler", "TrainOrder"]
