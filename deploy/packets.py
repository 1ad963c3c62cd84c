"""Packets: a frame's streams cut into datagrams that each decode alone, and their reassembly.

Ulhaq, B.A.Sc. thesis, SFU 2020, §4.3: the device fills a send buffer with a tensor's bytes and
flushes it at the end of the tensor (``process_send_buffer``), so no packet carries two tensors;
§3.2: a receiver that loses part of a tensor fills it in and runs the cloud model anyway.

A lost packet must lose a *known* set of tensor elements, not the whole stream. So the edge codes
each stream as independent **channel groups** — consecutive channels ``first … first + n − 1``,
each group a complete :mod:`cilight.codecs` container with its own side information — sized so
that a group fits in one packet payload (``mss`` bytes, header included). A group that alone
exceeds the payload (one very large channel) is cut into fragments; losing any fragment loses
that group. This works for every codec that writes bytes (PNG, JPEG, JPEG2000: each group is a
smaller tiled image); its cost is the per-group container and codec headers, measured in
``benchmarks/concealment.py``.

::

    stream s [C, H, W] ─► groups g = channels [first, first + n) ─► container_g ─► fragment(s) ─► packet(s)
    optional: one ``channel_means`` packet per stream (C × float16, T_μ(c) for concealment)

    packet = 24-byte header ‖ payload, little-endian:
    offset size  field
    0      2     magic b"CK"
    2      1     packet version (1)
    3      1     kind             (0 codes group, 1 channel means)
    4      4     frame id         (uint32, the edge's counter)
    8      1     stream           (index of the split point)
    9      1     fragment index
    10     1     fragment count   (1–255)
    11     1     reserved (0)
    12     2     first channel of the group
    14     2     channels in the group
    16     2     channels of the stream (C)
    18     2     payload length
    20     4     CRC-32 of bytes 0–19 and the payload

:func:`reassemble` parses every packet (CRC first), drops exact duplicates, tolerates any order,
and returns per frame and stream the codes that arrived, which channels they cover and the
side information, ready for concealment in :class:`cilight.deploy.CloudRuntime`.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from cilight.codecs import CodecError, Quantized, codec_of, get_quantizer
from cilight.codecs.quantizers import wire_quantizer
from cilight.deploy.wire import HalfMetadata, group_side
from cilight.errors import ConfigError

PACKET_MAGIC = b"CK"
PACKET_VERSION = 1
_FIELDS = struct.Struct("<2sBBIBBBBHHHH")
PACKET_HEADER_BYTES = _FIELDS.size + 4  # + CRC-32
DEFAULT_MSS = 1400  # bytes per packet, header included (a TCP/UDP payload over Ethernet with margin)
KINDS = ("codes", "channel_means")
MAX_FRAGMENTS = 255


@dataclass(frozen=True)
class Packet:
    """One datagram: a fragment of a channel group's container, or a stream's channel means."""

    kind: str
    frame: int
    stream: int
    first_channel: int
    channels: int
    stream_channels: int
    payload: bytes
    fragment: int = 0
    fragments: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CodecError(f"packet kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        limits = {"frame": 2**32 - 1, "stream": 255, "first_channel": 0xFFFF, "channels": 0xFFFF,
                  "stream_channels": 0xFFFF, "fragment": MAX_FRAGMENTS - 1, "fragments": MAX_FRAGMENTS}
        for name, high in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
                raise CodecError(f"packet {name}={value!r}: expected an integer from 0 to {high}")
        if self.channels < 1 or self.first_channel + self.channels > self.stream_channels:
            raise CodecError(f"packet channels {self.first_channel}+{self.channels} lie outside a stream of "
                             f"{self.stream_channels} channels")
        if self.fragments < 1 or self.fragment >= self.fragments:
            raise CodecError(f"packet fragment {self.fragment} of {self.fragments}: expected an index below the count")
        if len(self.payload) > 0xFFFF:
            raise CodecError(f"packet payload of {len(self.payload)} bytes exceeds 65535")

    @property
    def group(self) -> tuple[int, int, str, int]:
        """What the packet belongs to: ``(frame, stream, kind, first channel)``."""
        return self.frame, self.stream, self.kind, self.first_channel

    def to_bytes(self) -> bytes:
        fields = _FIELDS.pack(PACKET_MAGIC, PACKET_VERSION, KINDS.index(self.kind), self.frame, self.stream,
                              self.fragment, self.fragments, 0, self.first_channel, self.channels,
                              self.stream_channels, len(self.payload))
        return fields + struct.pack("<I", zlib.crc32(self.payload, zlib.crc32(fields))) + bytes(self.payload)

    @classmethod
    def from_bytes(cls, data: bytes) -> Packet:
        """Parse and check one packet: length, magic, version, CRC, then every field."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CodecError(f"a packet must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) < PACKET_HEADER_BYTES:
            raise CodecError(f"packet of {len(data)} bytes is shorter than the {PACKET_HEADER_BYTES}-byte header")
        magic, version, kind, frame, stream, fragment, fragments, _, first, channels, total, length = (
            _FIELDS.unpack_from(data))
        if magic != PACKET_MAGIC:
            raise CodecError(f"not a cilight packet: magic {magic!r}, expected {PACKET_MAGIC!r}")
        if version != PACKET_VERSION:
            raise CodecError(f"packet version {version} is not supported (this cilight reads version {PACKET_VERSION})")
        if len(data) != PACKET_HEADER_BYTES + length:
            raise CodecError(f"packet is {len(data)} bytes, its header announces {PACKET_HEADER_BYTES + length}: "
                             "truncated or padded")
        (crc,) = struct.unpack_from("<I", data, _FIELDS.size)
        actual = zlib.crc32(data[PACKET_HEADER_BYTES:], zlib.crc32(data[: _FIELDS.size]))
        if crc != actual:
            raise CodecError(f"packet CRC-32 mismatch (stored {crc:08x}, computed {actual:08x}): the packet is corrupt")
        if kind >= len(KINDS):
            raise CodecError(f"unknown packet kind {kind}")
        return cls(KINDS[kind], frame, stream, first, channels, total, data[PACKET_HEADER_BYTES:], fragment, fragments)


def is_packet(data: object) -> bool:
    """Whether ``data`` starts like a packet (as opposed to a whole frame of containers)."""
    return isinstance(data, (bytes, bytearray, memoryview)) and bytes(data[:2]) == PACKET_MAGIC


def channel_groups(quantized: Quantized, quantizer: str, encode: Callable[[Quantized], bytes],
                   mss: int = DEFAULT_MSS) -> list[tuple[int, int, bytes]]:
    """``(first channel, channels, container)`` of each group of one stream, sized to one packet.

    Starts from the whole stream and shrinks the group size in proportion to the largest
    container until every group fits in ``mss − header`` bytes, or groups are single channels, or
    the codec cannot write a group that small at this rate; larger groups are then fragmented.
    """
    payload = check_mss(mss) - PACKET_HEADER_BYTES
    codes, side = quantized.codes, quantized.side
    channels = codes.shape[0]

    def coded(size: int) -> list[tuple[int, int, bytes]]:
        # groups of at most ``size`` channels, as equal as they can be: no small last group, which a codec with a
        # minimum stream (JPEG2000) could not write at the stream's rate
        count = math.ceil(channels / size)
        bounds = [round(i * channels / count) for i in range(count + 1)]
        return [(first, end - first, encode(Quantized(codes[first:end], group_side(side, quantizer, first, end - first))))
                for first, end in zip(bounds[:-1], bounds[1:])]

    size = channels
    groups = coded(size)
    while size > 1:
        largest = max(len(g[2]) for g in groups)
        if largest <= payload:
            break
        size = max(1, min(size - 1, math.floor(size * payload / largest * 0.9)))
        try:
            groups = coded(size)
        except CodecError:  # a rate too low for so small a group (JPEG2000's minimum stream): fragment instead
            break
    return groups


def check_mss(mss: object) -> int:
    if isinstance(mss, bool) or not isinstance(mss, int) or mss < PACKET_HEADER_BYTES + 64 or mss > 0xFFFF:
        raise ConfigError(f"mss={mss!r}: expected packet size in bytes from {PACKET_HEADER_BYTES + 64} to 65535")
    return mss


def packetize(frame: int, stream: int, stream_channels: int, groups: list[tuple[int, int, bytes]],
              mss: int = DEFAULT_MSS, channel_means: np.ndarray | None = None) -> list[bytes]:
    """The packets of one stream of one frame: each group's container in ≤ ``mss``-byte packets,
    then (optionally) the channel-means packet; nothing is shared between streams (flush per tensor)."""
    payload = check_mss(mss) - PACKET_HEADER_BYTES
    packets = []
    for first, count, container in groups:
        pieces = max(1, math.ceil(len(container) / payload))
        if pieces > MAX_FRAGMENTS:
            raise ConfigError(f"one channel's container is {len(container)} bytes: more than {MAX_FRAGMENTS} "
                              f"packets of {mss} bytes; use a larger mss or a lower rate")
        for i in range(pieces):
            packets.append(Packet("codes", frame, stream, first, count, stream_channels,
                                  container[i * payload : (i + 1) * payload], i, pieces).to_bytes())
    if channel_means is not None:
        means = np.asarray(channel_means, dtype="<f2").tobytes()
        packets.append(Packet("channel_means", frame, stream, 0, stream_channels, stream_channels, means).to_bytes())
    return packets


@dataclass
class ReceivedStream:
    """What arrived of one stream of one frame.

    ``codes`` ``[C, H, W]`` (zeros where nothing arrived), ``features`` the dequantized values
    (zeros likewise), ``channels`` ``[C]`` bool, ``True`` where the channel's group arrived whole,
    ``sides`` the side information of each arrived group by first channel, ``channel_means`` the
    edge's ``T_μ(c)`` if its packet arrived.
    """

    codes: np.ndarray
    features: np.ndarray
    channels: np.ndarray
    sides: dict[int, tuple[int, np.ndarray]] = field(default_factory=dict)
    channel_means: np.ndarray | None = None

    @property
    def lost_fraction(self) -> float:
        return float(1 - self.channels.mean())


@dataclass(frozen=True)
class Reception:
    """Frames reassembled from packets: ``frames`` (ids, ascending), ``streams[i][s]`` per frame and
    split point, and counts of what was discarded."""

    frames: tuple[int, ...]
    streams: tuple[tuple[ReceivedStream, ...], ...]
    duplicates: int = 0
    corrupt: int = 0
    incomplete_groups: int = 0

    @property
    def lost_fraction(self) -> float:
        """Fraction of all transmitted tensor elements of these frames that did not arrive."""
        lost = sum(float((~s.channels).sum()) * s.codes[0].size for frame in self.streams for s in frame)
        total = sum(s.codes.size for frame in self.streams for s in frame)
        return lost / total if total else 0.0


def reassemble(packets: Iterable[bytes], meta: HalfMetadata, drop_corrupt: bool = False) -> Reception:
    """Parse, deduplicate and reassemble ``packets`` of any number of frames, in any order.

    A packet that fails its checks raises :class:`CodecError` (``drop_corrupt=False``, the
    default: corrupt bytes are never decoded) or is counted and treated as lost. Exact duplicates
    are ignored; two different packets claiming the same place are an error either way.
    """
    splits = meta.split_points
    fragments: dict[tuple, dict[int, Packet]] = {}
    duplicates = corrupt = 0
    for index, data in enumerate(packets):
        try:
            packet = Packet.from_bytes(data)
            if packet.stream >= len(splits):
                raise CodecError(f"packet names stream {packet.stream}; this model sends {len(splits)}")
            c = meta.stream_shapes[splits[packet.stream]][0]
            if packet.stream_channels != c:
                raise CodecError(f"packet says stream {splits[packet.stream]} has {packet.stream_channels} channels, "
                                 f"this model's has {c}")
        except CodecError as err:
            if not drop_corrupt:
                raise CodecError(f"packet {index}: {err}") from None
            corrupt += 1
            continue
        group = fragments.setdefault(packet.group, {})
        previous = group.get(packet.fragment)
        if previous is not None:
            if previous != packet:
                raise CodecError(f"packet {index}: two different packets for frame {packet.frame}, stream "
                                 f"{splits[packet.stream]}, channel {packet.first_channel}, fragment {packet.fragment}")
            duplicates += 1
            continue
        group[packet.fragment] = packet

    frames = sorted({key[0] for key in fragments})
    received = {f: [_empty_stream(meta, s) for s in splits] for f in frames}
    incomplete = 0
    for (frame, stream, kind, first), parts in sorted(fragments.items(), key=lambda item: item[0][:2] + item[0][3:]):
        head = next(iter(parts.values()))
        if any((p.fragments, p.channels) != (head.fragments, head.channels) for p in parts.values()):
            raise CodecError(f"frame {frame}, stream {splits[stream]}, channel {first}: fragments disagree on the group")
        if len(parts) < head.fragments:
            incomplete += 1
            continue
        payload = b"".join(parts[i].payload for i in range(head.fragments))
        target = received[frame][stream]
        if kind == "channel_means":
            means = np.frombuffer(payload, dtype="<f2").astype(np.float32)
            if means.shape != (len(target.channels),) or not np.isfinite(means).all():
                raise CodecError(f"frame {frame}, stream {splits[stream]}: channel means packet holds "
                                 f"{means.size} values, expected {len(target.channels)} finite")
            target.channel_means = means
            continue
        _place_group(target, first, head.channels, payload, meta, splits[stream], frame)
    streams = tuple(tuple(received[f]) for f in frames)
    return Reception(tuple(frames), streams, duplicates, corrupt, incomplete)


def _empty_stream(meta: HalfMetadata, split: str) -> ReceivedStream:
    shape = tuple(meta.stream_shapes[split])
    dtype = np.uint8 if meta.bits <= 8 else np.int32
    return ReceivedStream(np.zeros(shape, dtype), np.zeros(shape, np.float32), np.zeros(shape[0], bool))


def _place_group(target: ReceivedStream, first: int, count: int, container: bytes, meta: HalfMetadata, split: str,
                 frame: int) -> None:
    where = f"frame {frame}, stream {split}, channels {first}–{first + count - 1}"
    if target.channels[first : first + count].any():
        raise CodecError(f"{where}: overlaps a group already received")
    header, quantized = codec_of(container).decode_quantized(container)
    _, h, w = target.codes.shape
    if (header.quantizer, header.bits, header.shape) != (meta.quantizer, meta.bits, (count, h, w)):
        raise CodecError(f"{where}: container holds {header.quantizer} {header.bits}-bit {list(header.shape)}, expected "
                         f"{meta.quantizer} {meta.bits}-bit {[count, h, w]}")
    quantizer = get_quantizer(meta.quantizer, bits=meta.bits)
    target.codes[first : first + count] = quantized.codes
    target.features[first : first + count] = quantizer.dequantize(quantized.codes, quantized.side)
    target.channels[first : first + count] = True
    target.sides[first] = (count, np.asarray(quantized.side))


def stream_side_of(received: ReceivedStream, quantizer: str, filled: np.ndarray, bits: int) -> np.ndarray:
    """The side information for the cloud half's input of a concealed stream: what arrived, and for
    the rest the range of the filled-in values (``minmax`` with nothing received, or the lost
    channels' bounds for ``channel``)."""
    fill_side = np.asarray(get_quantizer(quantizer, bits=bits).quantize(filled).side, dtype=np.float64)
    if not wire_quantizer(quantizer).per_channel:  # one range per tensor: any group that arrived carries it
        return np.asarray(next(iter(received.sides.values()))[1], np.float64) if received.sides else fill_side
    channels = len(received.channels)
    side = fill_side.copy()
    for first, (count, part) in received.sides.items():
        side[first : first + count] = part[:count]
        side[channels + first : channels + first + count] = part[count:]
    return side


__all__ = ["DEFAULT_MSS", "PACKET_HEADER_BYTES", "PACKET_MAGIC", "Packet", "Reception", "ReceivedStream",
           "channel_groups", "check_mss", "is_packet", "packetize", "reassemble", "stream_side_of"]
