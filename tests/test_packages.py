"""Packages by role: the allocation math imports without torch or Lightning, and the
packages around it import."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

BLOCKED = ("torch", "torchvision", "lightning", "lightning.pytorch", "pytorch_lightning")


def test_allocation_imports_without_torch_or_lightning():
    code = (
        "import sys\n"
        f"for name in {BLOCKED!r}:\n"
        "    sys.modules[name] = None  # importing it raises ImportError\n"
        "import cilight.allocation\n"
        "from cilight.allocation import allocate, fit_surface\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'lightning', 'pytorch_lightning'}"
        " and sys.modules[m] is not None)\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("package", ["cilight.allocation", "cilight.evaluation", "cilight.ci_models",
                                     "cilight.ci_models.checkpoints", "cilight.datamodules.from_checkpoint",
                                     "cilight.evaluation.checkpoint_curves"])
def test_package_imports(package):
    module = importlib.import_module(package)
    for name in getattr(module, "__all__", ()):
        assert hasattr(module, name), f"{package}.__all__ names {name}, which it does not define"
