"""Packet loss between :class:`~cilight.deploy.EdgeRuntime` and :class:`~cilight.deploy.CloudRuntime`.

Two seeded loss models of a wireless link:

* :class:`IidLoss` — every packet is lost independently with probability ``rate``;
* :class:`GilbertElliottLoss` — a two-state Markov chain (Gilbert, Bell Syst. Tech. J. 1960;
  Elliott, 1963): in the *good* state packets are lost with probability ``loss_good``, in the
  *bad* state with ``loss_bad``; the chain moves good → bad with probability ``p`` and bad → good
  with ``r`` after each packet. The stationary share of the bad state is ``p / (p + r)``, so the
  long-run loss rate is ``(r·loss_good + p·loss_bad) / (p + r)``, and the mean length of a
  bad-state run is ``1 / r``. :meth:`GilbertElliottLoss.bursts` builds the chain with a given loss
  rate and mean burst length (``loss_good = 0``, ``loss_bad = 1``).

Both keep their random state across calls, so a long transmission is one realisation of the
process; ``transmit`` returns the packets that arrived, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cilight.errors import ConfigError


def _probability(name: str, value: object, *, below_one: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1 or (below_one and value == 1):
        raise ConfigError(f"{name}={value!r}: expected a probability from 0 to {'below 1' if below_one else '1'}")
    return float(value)


@dataclass
class IidLoss:
    """Independent packet loss with probability ``rate``."""

    rate: float
    seed: int = 0
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _probability("loss rate", self.rate)
        self.rng = np.random.default_rng(self.seed)

    def lost(self, count: int) -> np.ndarray:
        """``count`` draws, ``True`` where the packet is lost."""
        return self.rng.random(count) < self.rate

    def transmit(self, packets: list[bytes]) -> list[bytes]:
        return [p for p, lost in zip(packets, self.lost(len(packets))) if not lost]

    @property
    def expected_loss(self) -> float:
        return self.rate


@dataclass
class GilbertElliottLoss:
    """Bursty loss: a good/bad Markov chain with per-state loss probabilities."""

    p: float  # good → bad
    r: float  # bad → good
    loss_good: float = 0.0
    loss_bad: float = 1.0
    seed: int = 0
    bad: bool = False  # the current state
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _probability("p (good → bad)", self.p)
        _probability("r (bad → good)", self.r)
        if self.p + self.r == 0:
            raise ConfigError("p + r = 0: the chain never changes state; expected p + r > 0")
        _probability("loss_good", self.loss_good)
        _probability("loss_bad", self.loss_bad)
        self.rng = np.random.default_rng(self.seed)

    @classmethod
    def bursts(cls, rate: float, burst_length: float = 4.0, seed: int = 0) -> GilbertElliottLoss:
        """The chain that loses ``rate`` of the packets in bursts of ``burst_length`` on average."""
        _probability("loss rate", rate, below_one=True)
        if isinstance(burst_length, bool) or not isinstance(burst_length, (int, float)) or burst_length < 1:
            raise ConfigError(f"burst_length={burst_length!r}: expected a mean burst length of at least 1 packet")
        r = 1 / burst_length
        p = rate * r / (1 - rate)
        if p > 1:
            raise ConfigError(f"loss rate {rate} with bursts of {burst_length} needs p = {p:.3g} > 1; "
                              "use longer bursts or a lower rate")
        return cls(p=p, r=r, seed=seed)

    @property
    def expected_loss(self) -> float:
        return (self.r * self.loss_good + self.p * self.loss_bad) / (self.p + self.r)

    def lost(self, count: int) -> np.ndarray:
        draws = self.rng.random((count, 2))
        out = np.empty(count, dtype=bool)
        for i, (loss, move) in enumerate(draws):
            out[i] = loss < (self.loss_bad if self.bad else self.loss_good)
            self.bad = move >= self.r if self.bad else move < self.p
        return out

    def transmit(self, packets: list[bytes]) -> list[bytes]:
        return [p for p, lost in zip(packets, self.lost(len(packets))) if not lost]


__all__ = ["GilbertElliottLoss", "IidLoss"]
