"""Deployment: run the exported edge and cloud halves over real bytes (``cilight.deploy``).

Free of training code: needs ONNX Runtime, numpy and :mod:`cilight.codecs` only. The wire
format that the exporter and both runtimes share — tensor names, side-information layout,
ONNX metadata, the session factory — is :mod:`cilight.deploy.wire`: it lives beside the codecs
so that the exporter (in ``cilight.ci_models``) and these runtimes import the same module
while dependencies still flow one way (codecs ← ci_models, codecs ← deploy). Over a lossy link
the frame is cut into packets (:mod:`~cilight.deploy.packets`), a seeded loss model sits between
the runtimes (:mod:`~cilight.deploy.link`), and the cloud conceals what was lost.
"""

from cilight.deploy.latency import LatencyModel, Strategy, retransmission_delay
from cilight.deploy.link import GilbertElliottLoss, IidLoss
from cilight.deploy.packets import DEFAULT_MSS, Packet, Reception, reassemble
from cilight.deploy.runtime import CloudRuntime, EdgeRuntime
from cilight.deploy.wire import HalfMetadata, stream_tensor_names

__all__ = ["DEFAULT_MSS", "CloudRuntime", "EdgeRuntime", "GilbertElliottLoss", "HalfMetadata", "IidLoss", "LatencyModel",
           "Packet", "Reception", "Strategy", "reassemble", "retransmission_delay", "stream_tensor_names"]
