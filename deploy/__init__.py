"""Deployment: run the exported edge and cloud halves over real bytes (``cilight.deploy``).

Free of training code: needs ONNX Runtime, numpy and :mod:`cilight.codecs` only.
"""

from cilight.deploy.latency import LatencyModel, Strategy
from cilight.deploy.runtime import CloudRuntime, EdgeRuntime, HalfMetadata

__all__ = ["CloudRuntime", "EdgeRuntime", "HalfMetadata", "LatencyModel", "Strategy"]
