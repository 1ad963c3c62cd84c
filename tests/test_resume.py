"""Resuming from ``last.ckpt`` (cilight/resume.py): a run stopped by a Ctrl-C and resumed with ``--ckpt_path``
ends at the epoch, the global step and the weights of a run that was never stopped; the training loader's
orders are those of a plain shuffled ``DataLoader``; ``last.ckpt`` is the last epoch, not the best one."""

from __future__ import annotations

import signal

import lightning.pytorch as pl
import pytest
import torch
from helpers import train
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from cilight.datamodules import StreetSceneDataModule
from cilight.errors import ConfigError
from cilight.resume import ExactResume

# 4 epochs of 2 steps with max_steps = 8, the reported settings at the smallest size
RUN = [
    "--data.height", "64", "--data.width", "128", "--data.num_train", "8", "--data.num_val", "4",
    "--data.num_test", "4", "--data.batch_size", "4", "--model.decoder_width", "16",
    "--trainer.max_epochs", "4", "--trainer.limit_val_batches", "1", "--trainer.enable_model_summary", "false",
    "--trainer.enable_progress_bar", "false", "--test_after_fit", "false", "--baselines", "false",
]
MAX_STEPS = ["--trainer.max_steps", "8"]


class InterruptAt(Callback):
    """Raises ``KeyboardInterrupt`` (what Ctrl-C raises) in ``hook`` at global step ``step``, once."""

    def __init__(self, step: int, hook: str) -> None:
        self.step, self.hook = step, hook

    def _maybe(self, trainer: pl.Trainer, hook: str) -> None:
        if hook == self.hook and trainer.global_step == self.step:
            self.hook = "done"
            raise KeyboardInterrupt

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._maybe(trainer, "on_train_batch_start")

    def on_after_backward(self, trainer, pl_module):  # in the step: forward and backward done, weights not yet
        self._maybe(trainer, "on_after_backward")

    def on_validation_end(self, trainer, pl_module):
        self._maybe(trainer, "on_validation_end")


def run(root, name, *args):
    """``train.py`` in this process; Lightning ignores SIGINT after a ``KeyboardInterrupt``, restored here."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        return train([*RUN, "--config", root / "callbacks.yaml", "--trainer.default_root_dir", root / "runs",
                      "--run_name", name, *args], root)
    finally:
        signal.signal(signal.SIGINT, handler)


def last(root, name) -> dict:
    return torch.load(root / "runs" / name / "checkpoints" / "last.ckpt", weights_only=True)


def leaves(state, path="") -> list:
    """Every ``(path, value)`` of a nested state (an optimizer's, a scheduler's)."""
    if isinstance(state, dict):
        return [leaf for key in sorted(state, key=str) for leaf in leaves(state[key], f"{path}/{key}")]
    if isinstance(state, list | tuple):
        return [leaf for i, value in enumerate(state) for leaf in leaves(value, f"{path}/{i}")]
    return [(path, state)]


def same(a, b) -> bool:
    return type(a) is type(b) and (torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b)


@pytest.fixture(scope="module")
def root(tmp_path_factory, quick_callbacks):
    folder = tmp_path_factory.mktemp("resume")
    (folder / "callbacks.yaml").write_text(quick_callbacks.read_text())
    return folder


@pytest.fixture(scope="module")
def uninterrupted(root) -> dict:
    proc = run(root, "whole", *MAX_STEPS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return last(root, "whole")


@pytest.mark.slow
@pytest.mark.parametrize(("hook", "step", "max_steps", "written_at"), [
    # the report: a Ctrl-C just after the first epoch wrote last.ckpt (nothing trained since: it stays), with
    # max_steps (Lightning counted that epoch twice) and without
    ("on_train_batch_start", 2, MAX_STEPS, 2),
    ("on_train_batch_start", 2, [], 2),
    # in the middle of an epoch, inside a step (its batch-norm statistics already moved): written there
    ("on_after_backward", 3, MAX_STEPS, 3),
    # during the second epoch's validation: last.ckpt stays the first epoch's, the resume trains the second again
    ("on_validation_end", 4, [], 2),
], ids=["after-first-epoch", "after-first-epoch-no-max-steps", "mid-step", "in-validation"])
def test_an_interrupted_run_resumes_to_the_uninterrupted_one(root, uninterrupted, hook, step, max_steps, written_at):
    name = f"{hook}-{step}-{len(max_steps)}"
    proc = run(root, name, *max_steps, "--trainer.callbacks+=test_resume.InterruptAt",
               "--trainer.callbacks.init_args.step", step, "--trainer.callbacks.init_args.hook", hook)
    assert proc.returncode == 1, proc.stderr[-3000:]  # Lightning's exit after a KeyboardInterrupt
    assert last(root, name)["global_step"] == written_at

    proc = run(root, name, *max_steps, "--ckpt_path", root / "runs" / name / "checkpoints" / "last.ckpt")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = last(root, name)
    assert (resumed["epoch"], resumed["global_step"]) == (uninterrupted["epoch"], uninterrupted["global_step"]) == (3, 8)
    assert resumed["loops"]["fit_loop"]["epoch_progress"] == uninterrupted["loops"]["fit_loop"]["epoch_progress"]
    assert resumed["state_dict"].keys() == uninterrupted["state_dict"].keys()
    different = [k for k, v in uninterrupted["state_dict"].items() if not torch.equal(v, resumed["state_dict"][k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    for key in ("optimizer_states", "lr_schedulers"):
        mine, theirs = leaves(resumed[key]), leaves(uninterrupted[key])
        assert [p for p, _ in mine] == [p for p, _ in theirs]
        assert all(same(a, b) for (_, a), (_, b) in zip(mine, theirs)), key
    checkpoints = {p.name for p in (root / "runs" / name / "checkpoints").iterdir()}
    assert checkpoints == {p.name for p in (root / "runs" / "whole" / "checkpoints").iterdir()}  # the same best


# -- the training loader's order ---------------------------------------------------------------------


class Numbers(StreetSceneDataModule):
    """A datamodule whose training samples are their own indices."""

    def __init__(self, size: int, num_workers: int = 0) -> None:
        super().__init__(height=32, width=32, batch_size=4, num_workers=num_workers, seed=3)
        self.size = size

    def _build_split(self, split):
        return TensorDataset(torch.arange(self.size))


def epochs(loader, count: int, limit: int | None = None) -> list[list[int]]:
    """The batches of ``count`` epochs, each cut after ``limit`` batches as Lightning's ``limit_train_batches`` does."""
    out = []
    for _ in range(count):
        batches = []
        for i, (batch,) in enumerate(loader):
            if limit is not None and i == limit:
                break
            batches.append(batch.tolist())
        out.append(batches)
    return out


@pytest.mark.parametrize(("size", "num_workers", "limit"), [(18, 0, None), (16, 0, 2), (3, 0, None), (18, 2, None)])
def test_the_training_order_is_a_shuffled_loaders(size, num_workers, limit):
    data = Numbers(size, num_workers)
    plain = DataLoader(data.dataset("train"), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(3),
                       drop_last=size > 4, num_workers=num_workers, persistent_workers=num_workers > 0)
    assert epochs(data.train_dataloader(), 4, limit) == epochs(plain, 4, limit)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_the_training_order_resumes_in_a_pass_and_at_its_end(num_workers):
    data = Numbers(18, num_workers)
    whole = epochs(data.train_dataloader(), 3)

    stopped = Numbers(18, num_workers)
    loader = stopped.train_dataloader()
    assert epochs(loader, 1) == whole[:1]
    batches = iter(loader)
    assert [next(batches)[0].tolist() for _ in range(2)] == whole[1][:2]
    order = stopped.train_order.state(epoch_trained=False, batches_done=2)  # a checkpoint after 2 batches
    resumed = Numbers(18, num_workers)
    resumed.train_order.resume(order)
    loader = resumed.train_dataloader()
    assert epochs(loader, 1) == [whole[1][2:]]
    order = resumed.train_order.state(epoch_trained=True, batches_done=len(whole[1]))  # a checkpoint at its end
    again = Numbers(18, num_workers)
    again.train_order.resume(order)
    assert epochs(again.train_dataloader(), 1) == whole[2:]


# -- last.ckpt is the last epoch ----------------------------------------------------------------------


class Worsening(pl.LightningModule):
    """A model whose validation loss grows every epoch: the best checkpoint stays the first."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", float(self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(tmp_path, *callbacks) -> None:
    data = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)
    trainer = pl.Trainer(max_epochs=3, callbacks=list(callbacks), logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(Worsening(), data, data)


def test_last_ckpt_is_the_last_epoch_not_the_best(tmp_path):
    best = ModelCheckpoint(dirpath=tmp_path, filename="best-{epoch}", monitor="val/loss", save_last=False)
    fit(tmp_path, best, ExactResume())
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 2
    assert best.best_model_path.endswith("best-epoch=0.ckpt")


def test_only_one_callback_writes_last_ckpt(tmp_path):
    with pytest.raises(ConfigError, match="save_last: false"):
        fit(tmp_path, ModelCheckpoint(dirpath=tmp_path, monitor="val/loss", save_last=True), ExactResume())
