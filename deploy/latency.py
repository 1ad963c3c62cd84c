"""The latency model of shared inference (Ulhaq, B.A.Sc. thesis, SFU 2020, §4.2, eq 4.1–4.6).

A strategy Ω is the 4-tuple ``(I_c, E_c, E_s, I_s)`` of client inference, client encoding,
server decoding and server inference times, plus the bytes ``D`` it sends. Its total latency
at bandwidth ``B`` and round-trip time ``RTT`` is

    I_t = I_c + E_c + E_s + I_s + RTT + D / B = b + D / B          (eq 4.2, split layer; 4.3, server-only)
    I_t = I_c = b                                                   (eq 4.4, client-only: nothing is sent)

``I_t`` is affine in ``1/B``, so the strategy that wins at each bandwidth is the lower envelope
of straight lines in ``x = 1/B``: :meth:`LatencyModel.winning_ranges` finds its breakpoints
exactly (pairwise intersections), without sampling bandwidths.

Over a lossy link (packet loss ``p``, a frame of ``n`` packets of ``S`` bytes) the server can wait
for retransmissions or conceal what is missing (§3.2). :func:`retransmission_delay` is the
expected extra latency of selective-repeat ARQ: a further round is needed after ``k`` attempts
while any packet is still missing, with probability ``1 − (1 − p^k)^n``, and costs one ``RTT``
(the loss is noticed and the request answered), while the expected resent bytes add
``n·S·p / (1 − p)`` at bandwidth ``B``:

    ΔI_t = RTT · Σ_{k≥1} [1 − (1 − p^k)^n] + n·S·p / ((1 − p)·B)        (concealment: ΔI_t = 0)

Times are measured on one machine; a phone is slower. :meth:`Strategy.scaled` multiplies the
client-side times by a slowdown factor (or divides the server-side ones by a speed-up), so
the same measurements answer "what if the edge were a phone 8× slower than this CPU".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from cilight.errors import ConfigError


def _check_time(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name}={value!r}: expected a finite number ≥ 0")


@dataclass(frozen=True)
class Strategy:
    """One way of running the model; times in seconds, ``data_bytes`` = D (0 for client-only)."""

    name: str
    client_inference: float = 0.0  # I_c
    client_encode: float = 0.0  # E_c
    server_decode: float = 0.0  # E_s
    server_inference: float = 0.0  # I_s
    data_bytes: float = 0.0  # D

    def __post_init__(self) -> None:
        for field in ("client_inference", "client_encode", "server_decode", "server_inference", "data_bytes"):
            _check_time(f"{self.name}.{field}", getattr(self, field))

    @property
    def remote(self) -> bool:
        """Whether anything crosses the network (and so pays RTT and D/B)."""
        return self.data_bytes > 0

    def base(self, rtt: float) -> float:
        """``b`` of eq 4.2–4.4: everything but the transfer time."""
        compute = self.client_inference + self.client_encode + self.server_decode + self.server_inference
        return compute + (rtt if self.remote else 0.0)

    def total(self, bandwidth, rtt: float) -> np.ndarray:
        """``I_t`` (eq 4.2–4.4) at ``bandwidth`` bytes/s (scalar or array)."""
        bandwidth = np.asarray(bandwidth, dtype=float)
        if (bandwidth <= 0).any():
            raise ConfigError("bandwidth must be positive (bytes per second)")
        return self.base(rtt) + self.data_bytes / bandwidth

    def scaled(self, client_slowdown: float = 1.0, server_speedup: float = 1.0) -> Strategy:
        """The same strategy on a client ``client_slowdown``× slower and a server ``server_speedup``× faster."""
        for name, value in (("client_slowdown", client_slowdown), ("server_speedup", server_speedup)):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"{name}={value!r}: expected a positive factor")
        return replace(
            self,
            client_inference=self.client_inference * client_slowdown,
            client_encode=self.client_encode * client_slowdown,
            server_decode=self.server_decode / server_speedup,
            server_inference=self.server_inference / server_speedup,
        )


def retransmission_delay(packets: int, loss: float, rtt: float, packet_bytes: float, bandwidth: float) -> float:
    """Expected extra seconds until all ``packets`` of a frame arrived with selective-repeat ARQ
    at i.i.d. packet ``loss`` (see the module docstring); 0 when nothing is lost."""
    if isinstance(packets, bool) or not isinstance(packets, int) or packets < 1:
        raise ConfigError(f"packets={packets!r}: expected a positive integer")
    if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not 0 <= loss < 1:
        raise ConfigError(f"loss={loss!r}: expected a packet-loss probability from 0 to below 1")
    _check_time("rtt", rtt)
    _check_time("packet_bytes", packet_bytes)
    if not isinstance(bandwidth, (int, float)) or not bandwidth > 0:
        raise ConfigError(f"bandwidth={bandwidth!r}: expected a positive number of bytes per second")
    if loss == 0:
        return 0.0
    rounds, k = 0.0, 1
    while True:  # the terms fall geometrically (≈ n·p^k); stop when they no longer matter
        term = 1 - (1 - loss**k) ** packets
        rounds += term
        if term < 1e-12:
            break
        k += 1
    return rtt * rounds + packets * packet_bytes * loss / ((1 - loss) * bandwidth)


@dataclass(frozen=True)
class LatencyModel:
    """Strategies compared at a fixed round-trip time (seconds)."""

    strategies: tuple[Strategy, ...]
    rtt: float = 0.0

    def __post_init__(self) -> None:
        if not self.strategies:
            raise ConfigError("the latency model needs at least one strategy")
        names = [s.name for s in self.strategies]
        if len(set(names)) != len(names):
            raise ConfigError(f"strategy names must be unique, got {names}")
        _check_time("rtt", self.rtt)

    def totals(self, bandwidths) -> np.ndarray:
        """``[strategies, bandwidths]`` total latencies."""
        return np.stack([s.total(bandwidths, self.rtt) for s in self.strategies])

    def best(self, bandwidths) -> list[str]:
        """Name of the fastest strategy at each bandwidth (first listed wins ties)."""
        return [self.strategies[i].name for i in self.totals(bandwidths).argmin(0)]

    def winning_ranges(self, low: float, high: float) -> list[tuple[str, float, float]]:
        """``(strategy, from_bandwidth, to_bandwidth)`` covering ``[low, high]`` bytes/s, in order.

        In ``x = 1/B`` every ``I_t`` is the line ``b + D·x``; the winner can change only where
        two lines cross, so the envelope is exact between consecutive crossings.
        """
        if not 0 < low < high:
            raise ConfigError(f"bandwidth range [{low}, {high}]: expected 0 < low < high")
        x_lo, x_hi = 1 / high, 1 / low
        lines = [(s.base(self.rtt), s.data_bytes) for s in self.strategies]
        cuts = {x_lo, x_hi}
        for i, (b1, d1) in enumerate(lines):
            for b2, d2 in lines[i + 1 :]:
                if d1 != d2:
                    x = (b2 - b1) / (d1 - d2)
                    if x_lo < x < x_hi:
                        cuts.add(x)
        xs = sorted(cuts)
        ranges: list[list] = []
        for a, b in zip(xs, xs[1:]):
            mid = (a + b) / 2
            winner = min(range(len(lines)), key=lambda k: lines[k][0] + lines[k][1] * mid)
            name = self.strategies[winner].name
            if ranges and ranges[-1][0] == name:
                ranges[-1][1] = 1 / b
            else:
                ranges.append([name, 1 / b, 1 / a])
        return [(name, lo, hi) for name, lo, hi in reversed(ranges)]

    def plot(self, path, low: float, high: float, title: str = "") -> None:
        """Total latency against bandwidth (log axis), like thesis Fig. 4.4/4.5, saved to ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        bandwidths = np.geomspace(low, high, 400)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for strategy, totals in zip(self.strategies, self.totals(bandwidths)):
            ax.plot(bandwidths / 1e6, totals * 1e3, label=strategy.name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("upload bandwidth (MB/s)")
        ax.set_ylabel("total latency I_t (ms)")
        ax.set_title(title or f"latency model (thesis eq 4.1–4.6), RTT {self.rtt * 1e3:.0f} ms")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
