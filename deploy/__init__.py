"""Deployment: run the exported edge and cloud halves over real bytes (``cilight.deploy``).

Free of training code and of torch: it needs ONNX Runtime, numpy, Pillow and :mod:`cilight.codecs`
(whose byte path is numpy), which is what the edge install holds (``pip install ./edge``, the
distribution ``cilight-edge``). The wire format that the exporter (``cilight.onnx_export``) and both
runtimes share — tensor names, side-information layout, ONNX metadata, the session factory — is
:mod:`cilight.deploy.wire`. Over a lossy link the frame is cut into packets
(:mod:`~cilight.deploy.packets`), a seeded loss model sits between the runtimes
(:mod:`~cilight.deploy.link`), and the cloud conceals what was lost.
"""

from cilight.deploy.latency import LatencyModel, Strategy, retransmission_delay
from cilight.deploy.link import GilbertElliottLoss, IidLoss
from cilight.deploy.packets import DEFAULT_MSS, Packet, Reception, reassemble
from cilight.deploy.runtime import CloudRuntime, EdgeRuntime
from cilight.deploy.wire import HalfMetadata, stream_tensor_names

__all__ = ["DEFAULT_MSS", "CloudRuntime", "EdgeRuntime", "GilbertElliottLoss", "HalfMetadata", "IidLoss", "LatencyModel",
           "Packet", "Reception", "Strategy", "reassemble", "retransmission_delay", "stream_tensor_names"]
