"""cilight: collaborative intelligence with PyTorch Lightning.

The top-level folders of the repository are mapped into this package by
``pyproject.toml``: ``ci_models/`` is ``cilight.ci_models``, ``datamodules/`` is
``cilight.datamodules``, ``codecs/`` is ``cilight.codecs``, ``allocation/`` is
``cilight.allocation``, ``evaluation/`` is ``cilight.evaluation`` and ``deploy/`` is ``cilight.deploy``.
"""

from cilight.errors import CilightError, ConfigError, DatasetError

__version__ = "0.1.0"

__all__ = ["CilightError", "ConfigError", "DatasetError", "__version__"]
