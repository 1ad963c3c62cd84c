"""SyntheticStreets: procedurally generated street scenes, the embedded default dataset.

cilight must train and be tested without downloading anything, so the default dataset is
drawn, not read. Each sample is a street seen from a car: a pinhole camera at height
:data:`CAMERA_HEIGHT` above a flat ground plane looks down a straight road with lane
markings, kerbs, sidewalks and verges, facades with windows on both sides, a skyline at the
end of the street, trees, hedges, street lights, traffic signs, parked and moving cars and
pedestrians, under a sky with clouds. Lighting varies per scene (sun side, cast shadows,
overcast, brightness, contrast, colour cast, haze, sensor noise) and every object gets its
own colour. The ten classes and their colours are those of Cityscapes.

Geometry first, pixels second. A scene is sampled in world coordinates (metres; X right,
Y down, Z forward, camera at the origin, ground at ``Y = CAMERA_HEIGHT``) and only then
projected, with focal length ``f = FOCAL_PER_WIDTH * width`` pixels, so the same
``(seed, split, index)`` gives the same street at every resolution. Surfaces are drawn with
a depth buffer, which resolves occlusion like the painter's algorithm (far first) but stays
correct for facades that span near and far at once; objects are visited front to back so
that hidden ones are skipped cheaply.

Disparity is the stereo disparity of a second camera :data:`BASELINE` metres to the side,
``d = f·B/Z`` with ``Z`` the depth along the optical axis, in pixels of the output image.
Consequences (the tests check them):

* ground pixel at row ``v`` below the horizon row ``v0``: ``Z = f·h/(v − v0)``, so
  ``d = B·(v − v0)/h``, linear in the row with slope ``BASELINE / CAMERA_HEIGHT``;
* upright objects facing the camera (cars' ends, people, poles, trees, the skyline) have one
  depth, hence one disparity, that of the ground where they stand; facades and car sides run
  along the road, so their disparity is constant down each column and equal to that of the
  ground at their foot;
* the sky is infinitely far: disparity 0 and ``disparity_mask`` False. Half of the scenes
  show the bonnet of the ego car at the bottom, labelled 255 (ignore) with invalid
  disparity, as in Cityscapes.

The horizon is at a random row (a small camera pitch, modelled as a shifted principal point
so that the ground stays exactly linear in disparity).

Sample ``i`` of a split is a pure function of ``(seed, split, i, height, width)``: the scene
layout comes from ``numpy.random.default_rng([seed, split_id, i, 0])`` and the pixel noise
from ``[seed, split_id, i, 1]``, so results do not depend on worker count, sample order or
split size. :class:`SyntheticStreets` renders each split once, in ``setup``, and keeps it in
memory as uint8 / float16 arrays.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import Dataset

from cilight.datamodules.common import SPLITS, StreetSceneDataModule, check_image_size, check_int, trivial_baselines
from cilight.errors import ConfigError

CLASS_NAMES = (
    "road",
    "sidewalk",
    "building",
    "pole",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "car",
)
# The Cityscapes colours of the same classes, so that plots read the same on both datasets.
CLASS_COLORS = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (153, 153, 153),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (0, 0, 142),
)
ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR = range(len(CLASS_NAMES))
GROUND_CLASSES = (ROAD, SIDEWALK, TERRAIN)
"""Classes drawn only on the ground plane (their disparity is linear in the row)."""
IGNORE = 255

CAMERA_HEIGHT = 1.5
"""Height of the camera above the ground plane, metres."""
BASELINE = 0.6
"""Stereo baseline, metres. With ``CAMERA_HEIGHT`` it sets the ground slope: 0.4 px of disparity per row."""
FOCAL_PER_WIDTH = 1.0
"""Focal length in units of the image width (a 53° horizontal field of view)."""
HORIZON_RANGE = (0.36, 0.5)
"""Range of the horizon row as a fraction of the image height (the camera pitch)."""

_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

# Material colours, RGB in [0, 1]; every draw jitters them.
_FACADE_COLORS = (
    (0.78, 0.71, 0.58),  # sandstone
    (0.86, 0.82, 0.70),  # cream
    (0.58, 0.58, 0.57),  # concrete
    (0.42, 0.42, 0.45),  # dark render
    (0.56, 0.31, 0.23),  # brick
    (0.76, 0.60, 0.36),  # ochre
    (0.88, 0.87, 0.84),  # white
    (0.78, 0.62, 0.57),  # pink render
    (0.52, 0.57, 0.62),  # blue-grey
)
_CAR_COLORS = (
    (0.85, 0.85, 0.85),  # white
    (0.62, 0.63, 0.66),  # silver
    (0.08, 0.08, 0.09),  # black
    (0.10, 0.16, 0.38),  # dark blue
    (0.62, 0.08, 0.07),  # red
    (0.30, 0.30, 0.32),  # graphite
    (0.18, 0.35, 0.62),  # blue
    (0.15, 0.26, 0.17),  # dark green
    (0.68, 0.60, 0.45),  # beige
)
_SKIN_COLORS = ((0.92, 0.76, 0.62), (0.80, 0.60, 0.45), (0.58, 0.40, 0.28), (0.38, 0.25, 0.17))
_TROUSER_COLORS = ((0.12, 0.14, 0.25), (0.1, 0.1, 0.1), (0.4, 0.4, 0.42), (0.6, 0.52, 0.4))
_PAVING_COLORS = ((0.66, 0.64, 0.62), (0.72, 0.66, 0.58), (0.62, 0.50, 0.46), (0.58, 0.60, 0.62))
_LEAF = (0.20, 0.34, 0.12)
_RED, _WHITE, _BLUE, _YELLOW = (0.75, 0.08, 0.08), (0.92, 0.92, 0.9), (0.1, 0.25, 0.65), (0.95, 0.75, 0.1)
_TAIL_LIGHT, _HEAD_LIGHT = (0.75, 0.06, 0.05), (0.95, 0.93, 0.82)
_TYRE, _PLATE, _SHOE = (0.05, 0.05, 0.05), (0.88, 0.88, 0.88), (0.08, 0.08, 0.08)
_CLOUD = np.array([0.95, 0.95, 0.96], np.float32)
# Texture strength of the ground materials: (fine grain, mid blotches, coarse patches).
_GROUND_TEXTURE = {ROAD: (0.07, 0.04, 0.05), SIDEWALK: (0.05, 0.0, 0.04), TERRAIN: (0.15, 0.15, 0.12)}


# --------------------------------------------------------------------------------------
# Random draws
# --------------------------------------------------------------------------------------


class _Draws:
    """Scalar random draws served from blocks of a numpy Generator.

    A scene needs a few hundred scalar draws; one Generator call per scalar would cost more
    than the rest of the sampling, so uniforms are drawn 256 at a time.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._pool: list[float] = []

    def random(self) -> float:
        if not self._pool:
            self._pool = rng_block = self.rng.random(256).tolist()
            rng_block.reverse()
        return self._pool.pop()

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def chance(self, p: float) -> bool:
        return self.random() < p

    def integers(self, n: int) -> int:
        return min(int(self.random() * n), n - 1)

    def pick(self, options):
        return options[self.integers(len(options))]

    def poisson(self, lam: float) -> int:
        # Knuth's product of uniforms; fine for the small means used here.
        limit, k, product = math.exp(-lam), 0, self.random()
        while product > limit:
            k += 1
            product *= self.random()
        return k

    def gamma(self, shape: float, scale: float) -> float:
        return float(self.rng.gamma(shape, scale))

    def jitter(self, color, amount: float) -> tuple[float, float, float]:
        """``color`` with each channel scaled by a random factor in ``1 ± amount``."""
        return tuple(min(c * self.uniform(1 - amount, 1 + amount), 1.0) for c in color)

    def depth(self, near: float, far: float) -> float:
        # Biased towards near objects: uniform-in-Z would make most of them a few pixels tall.
        return near + (far - near) * self.random() ** 1.6


# --------------------------------------------------------------------------------------
# Camera and canvas
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking along +Z, ``CAMERA_HEIGHT`` above the ground; pixel centres at ``i + 0.5``."""

    height: int
    width: int
    horizon: float  # row of the horizon (continuous pixel coordinates)

    @property
    def focal(self) -> float:
        return FOCAL_PER_WIDTH * self.width

    @property
    def cx(self) -> float:
        return self.width / 2

    def column(self, x, z):
        """Image column of world point ``(x, ·, z)`` (floats or arrays)."""
        return self.cx + self.focal * x / z

    def row(self, y, z):
        """Image row of a point ``y`` metres above the ground at depth ``z`` (floats or arrays)."""
        return self.horizon + self.focal * (CAMERA_HEIGHT - y) / z


def _pixel_range(lo: float, hi: float, size: int) -> slice:
    """Pixels whose centre ``i + 0.5`` lies in ``[lo, hi)``, clipped to the image."""
    # Plain float arithmetic: this runs hundreds of times per image, numpy scalars are slow.
    start = min(max(math.ceil(lo - 0.5), 0), size)
    stop = min(max(math.ceil(hi - 0.5), 0), size)
    return slice(start, max(start, stop))


@functools.lru_cache(maxsize=32)
def _interpolation_matrix(n: int, cell: float) -> np.ndarray:
    """``[n, m]`` weights that smoothly interpolate ``m`` grid values spaced ``cell`` pixels apart."""
    t = (np.arange(n) + 0.5) / cell
    i = t.astype(np.int64)
    s = t - i
    s = s * s * (3 - 2 * s)  # smoothstep hides the grid lines
    weights = np.zeros((n, int(n / cell) + 3), np.float32)
    weights[np.arange(n), i] = 1 - s
    weights[np.arange(n), i + 1] = s
    return weights


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Value noise: Gaussian values on a grid of ``cell`` pixels, smoothly interpolated.

    The interpolation is separable, so it is two small matrix products.
    """
    rows, cols = _interpolation_matrix(height, max(cell, 1.0)), _interpolation_matrix(width, max(cell, 1.0))
    grid = rng.standard_normal((rows.shape[1], cols.shape[1]), dtype=np.float32)
    return rows @ grid @ cols.T


def _palette(*colors, scale: float = 1.0) -> np.ndarray:
    return np.array(colors, np.float32) * np.float32(scale)


class _Canvas:
    """Colour, label and depth buffers of one image, plus the noise fields textures use.

    Objects paint *materials*: an index map into a small palette, a per-pixel light factor
    and noise amplitudes. Colours are only computed for the pixels that pass the depth test.
    """

    def __init__(self, camera: Camera, rng: np.random.Generator) -> None:
        h, w = camera.height, camera.width
        self.camera = camera
        self.rgb = np.zeros((h, w, 3), np.float32)
        self.label = np.full((h, w), SKY, np.uint8)
        self.depth = np.full((h, w), np.inf, np.float32)
        # Screen-space noise shared by all materials; cell sizes scale with the width so a
        # texture looks the same at every resolution.
        self.fine = rng.standard_normal((h, w), dtype=np.float32)
        self.mid = _smooth_noise(rng, h, w, w / 64)
        self.coarse = _smooth_noise(rng, h, w, w / 16)
        self.cols = np.arange(w, dtype=np.float32) + 0.5
        self.rows = np.arange(h, dtype=np.float32) + 0.5
        self.ground = None  # (rows, X, Z) of the ground plane once drawn, for car shadows

    def paint(self, rows, cols, mask, depth, label, colors, material=None, light=None, texture=(0.0, 0.0, 0.0)):
        """Write ``label`` and a textured colour where ``mask`` holds and the surface is nearest.

        ``depth``: scalar or broadcastable to the window. ``colors``: ``[k, 3]`` palette,
        indexed by ``material`` (``[h, w]`` ints; all 0 when omitted). ``light``: scalar or
        broadcastable brightness factor. ``texture``: amplitudes of the fine / mid / coarse
        noise fields.
        """
        zbuf = self.depth[rows, cols]
        closer = np.logical_and(mask, depth < zbuf)
        if not closer.any():
            return
        zbuf[closer] = depth if np.ndim(depth) == 0 else np.broadcast_to(depth, zbuf.shape)[closer]
        color = colors[material[closer]] if material is not None else colors[0]
        gain = np.ones(1, np.float32)
        for amplitude, field_ in zip(texture, (self.fine, self.mid, self.coarse)):
            if amplitude:
                gain = gain + amplitude * field_[rows, cols][closer]
        if light is not None:
            gain = gain * (light if np.ndim(light) == 0 else np.broadcast_to(light, zbuf.shape)[closer])
        self.rgb[rows, cols][closer] = color * gain[:, None]
        self.label[rows, cols][closer] = label

    def billboard(self, x0: float, x1: float, y0: float, y1: float, z: float):
        """Window covering the fronto-parallel rectangle ``x∈[x0,x1], height∈[y0,y1]`` at depth ``z``.

        Returns ``(rows, cols, X, Y)`` with the world coordinates of the pixel centres
        (``X`` ``[1, w]``, ``Y`` ``[h, 1]``), or ``None`` when no pixel of it can be seen.
        """
        cam = self.camera
        if z <= 0.5:
            return None
        cols = _pixel_range(cam.column(x0, z), cam.column(x1, z), cam.width)
        rows = _pixel_range(cam.row(y1, z), cam.row(y0, z), cam.height)
        if cols.start == cols.stop or rows.start == rows.stop or (self.depth[rows, cols] <= z).all():
            return None
        X = (self.cols[cols] - cam.cx) * (z / cam.focal)
        Y = CAMERA_HEIGHT - (self.rows[rows] - cam.horizon) * (z / cam.focal)
        return rows, cols, X[None, :], Y[:, None]

    def side_plane(self, x: float, z0: float, z1: float, y0: float, y1: float):
        """Window covering the vertical plane ``X = x`` between depths ``z0..z1``, heights ``y0..y1``.

        Such a plane runs along the road (a facade, the side of a car). Returns
        ``(rows, cols, Z, Y)``: ``Z`` ``[1, w]`` is the depth of each column, ``Y`` ``[h, w]`` the
        height above ground of each pixel; or ``None`` when no pixel of it can be seen.
        """
        cam = self.camera
        z0 = max(z0, 0.5)
        if z1 <= z0 or x == 0:
            return None
        u_near, u_far = cam.column(x, z0), cam.column(x, z1)
        cols = _pixel_range(min(u_near, u_far), max(u_near, u_far), cam.width)
        if cols.start == cols.stop:
            return None
        # Pixel centres at the ends may fall a hair outside [z0, z1].
        Z = np.clip(cam.focal * x / (self.cols[cols] - cam.cx), z0, z1)
        z_near, z_far = float(Z.min()), float(Z.max())
        top = cam.row(y1, z_near if y1 > CAMERA_HEIGHT else z_far)
        rows = _pixel_range(top, cam.row(y0, z_near), cam.height)
        if rows.start == rows.stop or (self.depth[rows, cols] <= Z).all():
            return None
        Y = CAMERA_HEIGHT - (self.rows[rows, None] - cam.horizon) * (Z / cam.focal)
        return rows, cols, Z[None, :], Y


# --------------------------------------------------------------------------------------
# Scene layout (world coordinates, resolution independent)
# --------------------------------------------------------------------------------------


@dataclass
class _Side:
    """One side of the street, from the kerb outwards: verge, sidewalk, front garden, facades."""

    sign: int  # -1 left, +1 right
    kerb: float  # distance of the kerb from the road centre
    parking: bool  # whether the outer 2+ m of road are a parking strip
    verge: float  # grass strip between kerb and sidewalk
    sidewalk: float
    setback: float  # front garden between sidewalk and facades

    @property
    def walk_inner(self) -> float:
        return self.kerb + self.verge

    @property
    def walk_outer(self) -> float:
        return self.kerb + self.verge + self.sidewalk

    @property
    def facade(self) -> float:
        return self.walk_outer + self.setback


@dataclass
class _Scene:
    horizon_fraction: float
    road_center: float  # X of the road centre relative to the camera
    lanes: int
    lane_width: float
    sides: tuple[_Side, _Side]
    z_end: float  # depth of the skyline that closes the street
    sun: int  # side the sun shines from: -1, +1, or 0 when overcast
    shadow_edge: float  # the sun side is in shadow where sun·(X − road_center) > shadow_edge
    hood: float  # bonnet height as a fraction of the image height (0 = no bonnet)
    palette: dict = field(default_factory=dict)
    objects: list = field(default_factory=list)  # (nearest depth, kind, params)

    @property
    def half_road(self) -> float:
        """Half the width of the traffic lanes (parking strips excluded)."""
        return self.lanes * self.lane_width / 2

    def add(self, kind: str, near: float, **params) -> None:
        self.objects.append((near, kind, params))


def _sample_scene(rng: np.random.Generator) -> _Scene:
    r = _Draws(rng)
    lanes = r.pick((2, 2, 3, 4))
    lane_width = r.uniform(3.0, 3.6)
    half = lanes * lane_width / 2
    # Drive in a right-hand lane (right-hand traffic), a little off its centre.
    ego_lane = lanes - 1 - r.integers(max(1, lanes // 2))
    camera_x = -half + (ego_lane + 0.5) * lane_width + r.uniform(-0.4, 0.4)
    sides = []
    for sign in (-1, 1):
        parking = r.chance(0.5)
        sides.append(
            _Side(
                sign=sign,
                kerb=half + (r.uniform(2.0, 2.6) if parking else 0.0),
                parking=parking,
                verge=r.uniform(0.8, 2.5) if r.chance(0.3) else 0.0,
                sidewalk=r.uniform(2.0, 5.0),
                setback=r.uniform(1.0, 5.0) if r.chance(0.25) else 0.0,
            )
        )
    overcast = r.chance(0.35)
    scene = _Scene(
        horizon_fraction=r.uniform(*HORIZON_RANGE),
        road_center=-camera_x,
        lanes=lanes,
        lane_width=lane_width,
        sides=(sides[0], sides[1]),
        z_end=r.uniform(70.0, 220.0),
        sun=0 if overcast else r.pick((-1, 1)),
        shadow_edge=r.uniform(-half, half + 6.0),
        hood=r.uniform(0.05, 0.09) if r.chance(0.5) else 0.0,
    )
    scene.palette = _sample_palette(r, overcast)
    _place_buildings(r, scene)
    _place_street_furniture(r, scene)
    _place_traffic(r, scene)
    # Front to back, so that the depth test can skip whatever is already hidden.
    scene.objects.sort(key=lambda item: item[0])
    return scene


def _sample_palette(r: _Draws, overcast: bool) -> dict:
    if overcast:
        zenith, horizon = r.jitter((0.58, 0.61, 0.66), 0.08), r.jitter((0.80, 0.81, 0.83), 0.05)
    else:
        zenith, horizon = r.jitter((0.28, 0.48, 0.82), 0.12), r.jitter((0.72, 0.82, 0.93), 0.05)
    grey = r.uniform(0.26, 0.42)
    return {
        "zenith": np.array(zenith, np.float32),
        "horizon": np.array(horizon, np.float32),
        "cloudiness": r.uniform(0.0, 0.4) if overcast else r.uniform(0.2, 0.9),
        "asphalt": r.jitter((grey, grey * 0.98, grey * 1.04), 0.03),
        "paving": r.jitter(r.pick(_PAVING_COLORS), 0.06),
        "tile": r.uniform(0.3, 0.6),
        "grass": r.jitter((0.38, 0.52, 0.22), 0.15),
        "marking": r.jitter((0.88, 0.87, 0.82), 0.05),
        "dash": (r.uniform(2.0, 4.0), r.uniform(5.0, 10.0), r.uniform(0, 10)),
        "crossing": r.uniform(8.0, 30.0) if r.chance(0.3) else None,
        "hedge": r.jitter(_LEAF, 0.2),
        "haze": r.uniform(110.0, 380.0),
        "shade": r.uniform(0.5, 0.7),
        "brightness": r.uniform(0.75, 1.2),
        "contrast": r.uniform(0.8, 1.15),
        "cast": np.array([r.uniform(0.92, 1.08) for _ in range(3)], np.float32),
        "noise": r.uniform(0.004, 0.02),
    }


def _facade_style(r: _Draws) -> dict:
    floor = r.uniform(2.8, 3.6)
    spacing = r.uniform(2.2, 4.0)
    return {
        "color": r.jitter(r.pick(_FACADE_COLORS), 0.08),
        "floor": floor,
        "spacing": spacing,
        "window_width": r.uniform(0.35, 0.65) * spacing,
        "window_height": r.uniform(0.4, 0.65) * floor,
        "glass": r.jitter((0.16, 0.19, 0.24), 0.3),
        "shop": r.chance(0.4),
        "phase": r.uniform(0, spacing),
        "key": r.uniform(0, 100),
    }


def _place_buildings(r: _Draws, scene: _Scene) -> None:
    for side in scene.sides:
        x_line = scene.road_center + side.sign * side.facade
        z = -5.0
        while z < scene.z_end:
            if z > 10 and r.chance(0.14):
                # A gap (park, yard): grass behind the facade line and a few trees.
                length = r.uniform(8.0, 25.0)
                for _ in range(1 + r.integers(3)):
                    _add_tree(r, scene, x_line + side.sign * r.uniform(2.0, 15.0), r.uniform(z, z + length))
            else:
                length = r.uniform(8.0, 35.0)
                x = x_line + side.sign * (r.uniform(0.0, 1.0) if r.chance(0.3) else 0.0)
                height = min(max(r.gamma(3.0, 4.0), 4.0), 35.0)
                scene.add("building", z, x=x, z0=z, z1=min(z + length, scene.z_end), height=height,
                          depth=r.uniform(10.0, 20.0), sign=side.sign, **_facade_style(r))
                if r.chance(0.15):
                    scene.add("hedge", z, x=x - side.sign * r.uniform(0.3, 0.8), z0=z, z1=z + length,
                              height=r.uniform(0.7, 1.6))
            z += length
    # The skyline closing the street, wide enough to fill the view at z_end.
    half_view = 0.55 * scene.z_end / FOCAL_PER_WIDTH + abs(scene.road_center)
    x = -half_view
    while x < half_view:
        width = r.uniform(8.0, 30.0)
        if r.chance(0.25):
            scene.add("treeline", scene.z_end, x0=x, x1=x + width, z=scene.z_end,
                      height=r.uniform(6.0, 14.0), leaf=r.jitter(_LEAF, 0.25))
        else:
            scene.add("block", scene.z_end, x0=x, x1=x + width, z=scene.z_end,
                      height=min(max(r.gamma(2.5, 5.0), 5.0), 40.0), **_facade_style(r))
        x += width


def _add_tree(r: _Draws, scene: _Scene, x: float, z: float) -> None:
    crown = r.uniform(1.5, 3.2)
    scene.add("tree", z, x=x, z=z, trunk=r.uniform(1.8, 3.2), rx=crown, ry=crown * r.uniform(0.9, 1.4),
              leaf=r.jitter(_LEAF, 0.25), bark=r.jitter((0.28, 0.22, 0.17), 0.2))


def _place_street_furniture(r: _Draws, scene: _Scene) -> None:
    near, far = 5.0, scene.z_end - 5
    for side in scene.sides:
        edge = scene.road_center + side.sign * side.kerb
        if r.chance(0.55):  # an avenue of trees along the kerb or in the verge
            offset = side.verge / 2 if side.verge else r.uniform(0.6, 1.2)
            spacing = r.uniform(7.0, 14.0)
            z = r.uniform(0, spacing)
            while z < min(far, 110.0):
                if z > 2 and r.chance(0.9):
                    _add_tree(r, scene, edge + side.sign * offset, z + r.uniform(-1, 1))
                z += spacing
        spacing = r.uniform(22.0, 40.0)
        color = r.jitter((0.45, 0.46, 0.48) if r.chance(0.7) else (0.15, 0.2, 0.17), 0.1)
        z = r.uniform(3, spacing)
        while z < far:  # street lights
            scene.add("pole", z, x=edge + side.sign * 0.4, z=z, height=r.uniform(6.0, 9.0),
                      radius=r.uniform(0.08, 0.14), arm=-side.sign * r.uniform(1.0, 2.2), color=color, sign=None)
            z += spacing
        for _ in range(r.integers(3)):  # traffic signs
            z = r.depth(near, 80.0)
            scene.add("pole", z, x=edge + side.sign * r.uniform(0.3, 0.7), z=z, height=r.uniform(2.4, 3.4),
                      radius=0.045, arm=0.0, color=r.jitter((0.55, 0.56, 0.58), 0.1), sign=r.integers(4))
        for _ in range(r.poisson(2.5)):  # pedestrians on the sidewalk
            x = scene.road_center + side.sign * r.uniform(side.walk_inner + 0.4, side.walk_outer - 0.2)
            _add_person(r, scene, x, r.depth(near, 70.0))
    for _ in range(r.poisson(0.4)):  # someone crossing the road
        _add_person(r, scene, scene.road_center + r.uniform(-scene.half_road, scene.half_road), r.depth(8.0, 60.0))


def _add_person(r: _Draws, scene: _Scene, x: float, z: float) -> None:
    if r.chance(0.6):
        shirt = (r.uniform(0.05, 0.9), r.uniform(0.05, 0.9), r.uniform(0.05, 0.9))
    else:
        shirt = (r.uniform(0.05, 0.8),) * 3
    scene.add("person", z, x=x, z=z, height=r.uniform(1.55, 1.95), stride=r.uniform(0.0, 0.6), shirt=shirt,
              trousers=r.jitter(r.pick(_TROUSER_COLORS), 0.1), skin=r.jitter(r.pick(_SKIN_COLORS), 0.08),
              hair=r.jitter((0.12, 0.09, 0.07), 0.5))


def _add_car(r: _Draws, scene: _Scene, x: float, z: float, away: bool) -> None:
    scene.add("car", z, x=x, z=z, width=r.uniform(1.7, 2.0), height=r.uniform(1.35, 1.7),
              length=r.uniform(3.9, 4.9), away=away, color=r.jitter(r.pick(_CAR_COLORS), 0.08),
              glass=r.jitter((0.08, 0.1, 0.13), 0.3))


def _place_traffic(r: _Draws, scene: _Scene) -> None:
    far = scene.z_end - 6
    for lane in range(scene.lanes):
        x_lane = scene.road_center - scene.half_road + (lane + 0.5) * scene.lane_width
        away = lane >= scene.lanes // 2  # right-hand traffic: oncoming cars on the left
        # Keep a braking distance to the car ahead of the ego vehicle.
        z = r.uniform(12.0 if abs(x_lane) < scene.lane_width / 2 else 7.0, 30.0)
        while z < min(far, 120.0):
            if r.chance(0.55):
                _add_car(r, scene, x_lane + r.uniform(-0.3, 0.3), z, away)
            z += r.uniform(12.0, 45.0)
    for side in scene.sides:  # parked cars in the parking strips
        if side.parking:
            x = scene.road_center + side.sign * (side.kerb - 1.15)
            z = r.uniform(-2.0, 8.0)
            while z < min(far, 70.0):
                if r.chance(0.75):
                    _add_car(r, scene, x, z, away=r.chance(0.7))
                z += r.uniform(5.0, 9.0)


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def _shade_at(scene: _Scene, x: float) -> float:
    """Brightness of something standing at ``x``: darker in the shadow the sun-side buildings cast."""
    if scene.sun and scene.sun * (x - scene.road_center) > scene.shadow_edge:
        return scene.palette["shade"]
    return 1.0


def _first_ground_row(camera: Camera) -> int:
    return _pixel_range(camera.horizon + 1e-3, camera.height + 1, camera.height).start


def _draw_sky(canvas: _Canvas, scene: _Scene) -> None:
    """Gradient from the horizon haze to the zenith, with clouds; only above the horizon."""
    cam, p = canvas.camera, scene.palette
    rows = slice(0, _first_ground_row(cam))
    if rows.stop == 0:
        return
    t = np.clip((cam.horizon - canvas.rows[rows]) / max(cam.horizon, 1.0), 0.0, 1.0)[:, None, None] ** 0.7
    gradient = p["horizon"] * (1 - t) + p["zenith"] * t
    clouds = np.clip((canvas.coarse[rows] + 0.5 * canvas.mid[rows] - 1.4 + 1.6 * p["cloudiness"]) * 0.8, 0.0, 1.0)
    clouds = clouds[..., None]
    canvas.rgb[rows] = gradient * (1 - clouds) + _CLOUD * (0.85 + 0.15 * t) * clouds


def _draw_ground(canvas: _Canvas, scene: _Scene) -> None:
    """Road, kerbs, sidewalks and grass on the plane ``Y = CAMERA_HEIGHT``: every row below the horizon."""
    cam, p = canvas.camera, scene.palette
    rows = slice(_first_ground_row(cam), cam.height)
    if rows.start == rows.stop:
        return
    Z = (cam.focal * CAMERA_HEIGHT / (canvas.rows[rows] - cam.horizon))[:, None]
    X = (canvas.cols - cam.cx) * (Z / cam.focal)
    rel = X - np.float32(scene.road_center)
    dist = np.abs(rel)
    left, right = scene.sides
    on_right = rel >= 0
    kerb = np.where(on_right, right.kerb, left.kerb)
    road = dist < kerb
    kerbstone = ~road & (dist < kerb + 0.2)
    walk = (dist >= np.where(on_right, right.walk_inner, left.walk_inner)) & (
        dist < np.where(on_right, right.walk_outer, left.walk_outer)
    )
    sidewalk = kerbstone | walk
    label = np.full(rel.shape, TERRAIN, np.uint8)
    label[sidewalk] = SIDEWALK
    label[road] = ROAD

    materials = np.zeros((len(CLASS_NAMES), 3), np.float32)
    amplitude = np.zeros((3, len(CLASS_NAMES)), np.float32)
    for cls, color in ((ROAD, p["asphalt"]), (SIDEWALK, p["paving"]), (TERRAIN, p["grass"])):
        materials[cls] = color
        amplitude[:, cls] = _GROUND_TEXTURE[cls]
    base = materials[label]
    gain = 1.0 + amplitude[0][label] * canvas.fine[rows] + amplitude[1][label] * canvas.mid[rows]
    gain += amplitude[2][label] * canvas.coarse[rows]

    base[_road_markings(scene, rel, dist, Z) & road] = p["marking"]
    # Paving joints; far away they alias into noise, so they fade out with depth.
    tile = p["tile"]
    joints = ((X % tile) < 0.18 * tile) | ((Z % tile) < 0.18 * tile)
    gain -= (joints & walk) * (0.18 * np.clip(1.0 - Z / 60.0, 0.0, 1.0))
    gain[kerbstone] *= 1.15
    if scene.sun:
        gain[scene.sun * rel > scene.shadow_edge] *= p["shade"]

    canvas.rgb[rows] = base * gain[..., None]
    canvas.label[rows] = label
    canvas.depth[rows] = Z
    canvas.ground = (rows, X, Z)


def _road_markings(scene: _Scene, rel, dist, Z) -> np.ndarray:
    """Dashed lane lines, solid edge lines and sometimes a zebra crossing, on the ground plane."""
    p = scene.palette
    half = scene.half_road
    lane_pos = (rel + half) / scene.lane_width
    nearest = np.round(lane_pos)
    dash_len, gap, phase = p["dash"]
    dashed = (np.abs(lane_pos - nearest) * scene.lane_width < 0.07) & (nearest > 0) & (nearest < scene.lanes)
    dashed &= ((Z + phase) % (dash_len + gap)) < dash_len
    marking = dashed | (np.abs(dist - (half - 0.3)) < 0.07)
    if p["crossing"] is not None:
        zc = p["crossing"]
        marking |= (Z > zc) & (Z < zc + 4.0) & ((rel % 1.0) < 0.5) & (dist < half - 0.5)
    return marking


def _car_shadow(canvas: _Canvas, car: dict) -> None:
    """Darken the visible ground under a car."""
    cam = canvas.camera
    if canvas.ground is None:
        return
    ground_rows, X, Z = canvas.ground
    z_near, z_far = car["z"] - 0.25, car["z"] + car["length"] + 0.15
    if z_near <= 0.5:
        return
    rows = _pixel_range(cam.row(0.0, z_far), cam.row(0.0, z_near), cam.height)
    rows = slice(max(rows.start, ground_rows.start), rows.stop)
    if rows.start >= rows.stop:
        return
    local = slice(rows.start - ground_rows.start, rows.stop - ground_rows.start)
    under = (np.abs(X[local] - car["x"]) < car["width"] / 2 + 0.15) & (Z[local] > z_near) & (Z[local] < z_far)
    # Only pixels that still show the ground: nearer objects were drawn first.
    under &= canvas.depth[rows] == Z[local]
    canvas.rgb[rows][under] *= 0.35


def _draw_building(canvas: _Canvas, scene: _Scene, b: dict) -> None:
    # Facade along the road (plane X = x), lit when it faces the sun.
    if scene.sun == 0:
        light = 0.94
    else:
        light = 1.0 if scene.sun == -b["sign"] else 1.1 * scene.palette["shade"]
    win = canvas.side_plane(b["x"], b["z0"], b["z1"], 0.0, b["height"])
    if win is not None:
        rows, cols, Z, Y = win
        _paint_facade(canvas, rows, cols, Z, Z - b["z0"], Y, b, light)
    # The end wall facing the camera shows above lower neighbours and across gaps.
    x0, x1 = sorted((b["x"], b["x"] + b["sign"] * b["depth"]))
    win = canvas.billboard(x0, x1, 0.0, b["height"], b["z0"])
    if win is not None:
        rows, cols, X, Y = win
        mask = np.broadcast_to((Y >= 0) & (Y < b["height"]), (Y.shape[0], X.shape[1]))
        canvas.paint(rows, cols, mask, b["z0"], BUILDING, _palette(b["color"], scale=0.8), texture=(0.03, 0.0, 0.04))


def _paint_facade(canvas: _Canvas, rows, cols, depth, along, Y, style: dict, light: float) -> None:
    """Wall with a grid of windows, in facade coordinates (metres along the wall, height)."""
    Y = np.broadcast_to(Y, np.broadcast_shapes(Y.shape, along.shape))
    floor, spacing = style["floor"], style["spacing"]
    shifted = along + style["phase"]
    bay = np.floor(shifted / spacing)
    u = shifted - bay * spacing  # position within the bay: depends on the column only
    level = np.floor(Y / floor)
    in_floor = Y - level * floor
    sill = 0.3 * floor
    window = (u < style["window_width"]) & (in_floor > sill) & (in_floor < sill + style["window_height"])
    window &= Y < style["height"] - 0.6
    if style["shop"]:
        shop = (u < 0.8 * spacing) & (in_floor > 0.4) & (in_floor < 0.85 * floor)
        window = np.where(level == 0, shop, window)
    material = window.view(np.uint8).copy()
    material[Y > style["height"] - 0.5] = 2  # cornice
    # A per-window pseudo-random brightness: some panes reflect the sky, some are lit.
    pane = np.abs(np.sin(bay * 12.9898 + level * 78.233 + style["key"]) * 43758.5453) % 1.0
    shine = np.where(window, 0.6 + 1.4 * pane**3, 1.0) * light
    colors = _palette(style["color"], style["glass"], style["color"])
    colors[2] *= 0.8
    mask = (Y >= 0) & (Y < style["height"])
    canvas.paint(rows, cols, mask, depth, BUILDING, colors, material, shine, texture=(0.03, 0.02, 0.05))


def _draw_block(canvas: _Canvas, scene: _Scene, b: dict) -> None:
    win = canvas.billboard(b["x0"], b["x1"], 0.0, b["height"], b["z"])
    if win is not None:
        rows, cols, X, Y = win
        _paint_facade(canvas, rows, cols, b["z"], X - b["x0"], Y, b, 0.95)


def _draw_treeline(canvas: _Canvas, scene: _Scene, t: dict) -> None:
    win = canvas.billboard(t["x0"], t["x1"], 0.0, t["height"] * 1.3, t["z"])
    if win is None:
        return
    rows, cols, X, Y = win
    top = t["height"] * (1 + 0.15 * canvas.mid[rows, cols] + 0.1 * np.sin(X * 0.7))
    canvas.paint(rows, cols, (Y >= 0) & (Y < top), t["z"], VEGETATION, _palette(t["leaf"]), texture=(0.25, 0.25, 0))


def _draw_tree(canvas: _Canvas, scene: _Scene, t: dict) -> None:
    center = t["trunk"] + 0.7 * t["ry"]
    win = canvas.billboard(t["x"] - t["rx"] * 1.3, t["x"] + t["rx"] * 1.3, 0.0, center + t["ry"] * 1.3, t["z"])
    if win is None:
        return
    rows, cols, X, Y = win
    r = ((X - t["x"]) / t["rx"]) ** 2 + ((Y - center) / t["ry"]) ** 2
    crown = r < 1.0 + 0.45 * canvas.mid[rows, cols] + 0.15 * canvas.fine[rows, cols]
    trunk = (np.abs(X - t["x"]) < 0.14) & (Y >= 0) & (Y < center) & ~crown
    # Leaves are lit from above: darker towards the bottom of the crown.
    light = np.clip(0.75 + 0.35 * (Y - center) / t["ry"], 0.45, 1.15) * _shade_at(scene, t["x"])
    colors = _palette(t["leaf"], t["bark"])
    canvas.paint(rows, cols, crown | trunk, t["z"], VEGETATION, colors, trunk.view(np.uint8), light, (0.3, 0.3, 0))


def _draw_hedge(canvas: _Canvas, scene: _Scene, h: dict) -> None:
    win = canvas.side_plane(h["x"], h["z0"], h["z1"], 0.0, h["height"] * 1.2)
    if win is None:
        return
    rows, cols, Z, Y = win
    mask = (Y >= 0) & (Y < h["height"] * (1 + 0.12 * canvas.mid[rows, cols]))
    colors = _palette(scene.palette["hedge"], scale=0.9 * _shade_at(scene, h["x"]))
    canvas.paint(rows, cols, mask, Z, VEGETATION, colors, texture=(0.3, 0.25, 0.0))


def _draw_pole(canvas: _Canvas, scene: _Scene, p: dict) -> None:
    shade = _shade_at(scene, p["x"])
    arm, radius = p["arm"], p["radius"]
    x0, x1 = sorted((p["x"] - radius, p["x"] + radius + arm))
    win = canvas.billboard(min(x0, p["x"] - 0.45), max(x1, p["x"] + 0.45), 0.0, p["height"] + 0.1, p["z"])
    if win is None:
        return
    rows, cols, X, Y = win
    offset = np.abs(X - p["x"])
    shaft = (offset < radius) & (Y >= 0) & (Y < p["height"])
    if arm:
        lo, hi = sorted((p["x"], p["x"] + arm))
        top = (Y > p["height"] - 0.12) & (Y < p["height"])
        lamp = (np.abs(X - (p["x"] + arm)) < 0.3) & (Y > p["height"] - 0.28) & (Y < p["height"])
        shaft = shaft | (X >= lo) & (X <= hi) & top | lamp
    # Cylinder shading: brighter in the middle of the shaft.
    light = np.clip(1.0 - 0.3 * offset / radius, 0.6, 1.0) * shade
    canvas.paint(rows, cols, shaft, p["z"], POLE, _palette(p["color"]), light=light)
    if p["sign"] is not None:
        _draw_sign(canvas, rows, cols, X, Y, p, shade)


def _draw_sign(canvas: _Canvas, rows, cols, X, Y, p: dict, shade: float) -> None:
    """A sign plate on the pole; 2 cm in front of it, so the depth test keeps it on top."""
    dx, dy = X - p["x"], Y - (p["height"] - 0.35)
    if p["sign"] == 0:  # prohibition: red ring, white disc
        r = np.hypot(dx, dy)
        mask, inner, colors = r < 0.33, r < 0.24, _palette(_RED, _WHITE, scale=shade)
    elif p["sign"] == 1:  # mandatory: blue disc, white bar
        mask = np.hypot(dx, dy) < 0.33
        inner, colors = (np.abs(dx) < 0.05) & (np.abs(dy) < 0.2), _palette(_BLUE, _WHITE, scale=shade)
    elif p["sign"] == 2:  # warning: red-rimmed white triangle
        mask = (dy > -0.3) & (np.abs(dx) < (0.3 - dy) * 0.58)
        inner, colors = (dy > -0.22) & (np.abs(dx) < (0.22 - dy) * 0.5), _palette(_RED, _WHITE, scale=shade)
    else:  # priority road: yellow diamond on white
        d = np.abs(dx) + np.abs(dy)
        mask, inner, colors = d < 0.36, d < 0.24, _palette(_WHITE, _YELLOW, scale=shade)
    canvas.paint(rows, cols, mask, p["z"] - 0.02, SIGN, colors, inner.view(np.uint8))


def _draw_person(canvas: _Canvas, scene: _Scene, p: dict) -> None:
    height = p["height"]
    half = 0.125 * height  # half the shoulder width
    win = canvas.billboard(p["x"] - half * 1.6, p["x"] + half * 1.6, 0.0, height, p["z"])
    if win is None:
        return
    rows, cols, X, Y = win
    a = (X - p["x"]) / half  # -1..1 across the shoulders
    y = Y / height  # 0 at the feet, 1 at the top of the head
    head = (a / 0.42) ** 2 + ((y - 0.935) / 0.065) ** 2 < 1
    shoulder = 0.95 - 0.25 * (0.84 - y)
    torso = (y >= 0.47) & (y < 0.84) & (np.abs(a) < shoulder)
    arms = (y >= 0.5) & (y < 0.82) & (np.abs(a) >= shoulder) & (np.abs(a) < 1.2)
    spread = p["stride"] * (1.0 - 2.0 * y)
    legs = (y >= 0) & (y < 0.5) & ((np.abs(a + 0.33 + spread) < 0.26) | (np.abs(a - 0.33 - spread) < 0.26))
    material = legs.view(np.uint8).copy()  # 0 shirt, 1 trousers, 2 shoes, 3 skin, 4 hair
    material[legs & (y < 0.04)] = 2
    material[head] = 3
    material[head & (y > 0.95)] = 4
    colors = _palette(p["shirt"], p["trousers"], _SHOE, p["skin"], p["hair"])
    light = (1.0 - 0.25 * np.minimum(np.abs(a), 1.0)) * _shade_at(scene, p["x"])
    canvas.paint(rows, cols, head | torso | legs | arms, p["z"], PERSON, colors, material, light)


def _draw_car(canvas: _Canvas, scene: _Scene, c: dict) -> None:
    _car_shadow(canvas, c)
    shade = _shade_at(scene, c["x"])
    _draw_car_end(canvas, c, shade)
    if abs(c["x"]) > c["width"] / 2:  # the long side facing the camera's axis shows too
        _draw_car_side(canvas, c, shade)


def _draw_car_side(canvas: _Canvas, c: dict, shade: float) -> None:
    w, height, length = c["width"], c["height"], c["length"]
    win = canvas.side_plane(c["x"] - math.copysign(w / 2, c["x"]), c["z"], c["z"] + length, 0.0, height)
    if win is None:
        return
    rows, cols, Z, Y = win
    along = Z - c["z"]
    t = along / length if c["away"] else 1 - along / length  # 0 at the rear, 1 at the bonnet
    y = Y / height
    s = np.clip((y - 0.55) / 0.45, 0, 1)
    lower = (y >= 0.2) & (y < 0.56)
    cabin = (y >= 0.56) & (y < 1.0) & (t > 0.12 + 0.12 * s) & (t < 0.72 - 0.1 * s)
    windows = cabin & (y > 0.62) & (y < 0.93) & (t > 0.16 + 0.12 * s) & (t < 0.68 - 0.1 * s)
    r = 0.33
    wheels = ((along - 0.8) ** 2 + (Y - r) ** 2 < r * r) | ((along - (length - 0.8)) ** 2 + (Y - r) ** 2 < r * r)
    material = windows.view(np.uint8).copy()  # 0 paint, 1 glass, 2 tyre
    material[wheels] = 2
    colors = _palette(c["color"], c["glass"], _TYRE)
    colors[0] *= 0.82
    canvas.paint(rows, cols, lower | cabin | wheels, Z, CAR, colors, material, (0.85 + 0.3 * y) * shade)


def _draw_car_end(canvas: _Canvas, c: dict, shade: float) -> None:
    """The rear (or, for oncoming cars, the front) face: a fronto-parallel end of the box."""
    w, height = c["width"], c["height"]
    win = canvas.billboard(c["x"] - w / 2, c["x"] + w / 2, 0.0, height, c["z"])
    if win is None:
        return
    rows, cols, X, Y = win
    shape = (Y.shape[0], X.shape[1])
    a = np.broadcast_to(np.abs(X - c["x"]) / (w / 2), shape)
    y = np.broadcast_to(Y / height, shape)
    s = np.clip((y - 0.55) / 0.45, 0, 1)
    lower = (y >= 0.2) & (y < 0.56) & (a <= 1)
    cabin = (y >= 0.56) & (y < 1.0) & (a < 0.9 - 0.2 * s)
    wheels = (y >= 0) & (y < 0.22) & (a > 0.6) & (a <= 0.95)
    material = np.zeros(shape, np.uint8)  # 0 paint
    material[(y >= 0.2) & (y < 0.28)] = 1  # bumper
    material[(y > 0.6) & (y < 0.93) & (a < 0.8 - 0.2 * s)] = 2  # window
    material[(y > 0.42) & (y < 0.52) & (a > 0.68) & (a <= 0.97)] = 3  # lights
    material[(y > 0.26) & (y < 0.36) & (a < 0.22)] = 4  # number plate
    material[wheels] = 5
    colors = _palette(c["color"], c["color"], c["glass"], _TAIL_LIGHT if c["away"] else _HEAD_LIGHT, _PLATE, _TYRE)
    colors[1] *= 0.6
    canvas.paint(rows, cols, lower | cabin | wheels, c["z"], CAR, colors, material, (0.85 + 0.3 * y) * shade)


_DRAW = {
    "building": _draw_building,
    "block": _draw_block,
    "treeline": _draw_treeline,
    "tree": _draw_tree,
    "hedge": _draw_hedge,
    "pole": _draw_pole,
    "person": _draw_person,
    "car": _draw_car,
}


def _draw_hood(canvas: _Canvas, scene: _Scene) -> None:
    """Bonnet of the ego car: ignore label, no disparity (it is not part of the scene)."""
    cam = canvas.camera
    x = (canvas.cols - cam.cx) / (cam.width / 2)
    top = cam.height * (1 - scene.hood * (1 - 0.55 * x**2))
    rows = slice(min(max(int(top.min()), 0), cam.height), cam.height)
    below = canvas.rows[rows, None] - top[None, :]
    mask = below > 0
    t = np.clip(below / (scene.hood * cam.height), 0, 1)[..., None]
    color = scene.palette["horizon"] * 0.35 * (1 - t) + 0.06 * t  # the sky reflected in dark paint
    canvas.rgb[rows][mask] = color[mask]
    canvas.label[rows][mask] = IGNORE
    canvas.depth[rows][mask] = 0.0


def _finish(canvas: _Canvas, scene: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Camera effects: haze with distance, exposure, colour cast, slight blur, sensor noise."""
    p = scene.palette
    haze = -np.expm1(-canvas.depth / np.float32(p["haze"]))
    haze[np.isinf(canvas.depth)] = 0.0  # the sky is already the colour of the haze
    haze = haze[..., None]
    rgb = canvas.rgb * (1 - haze) + p["horizon"] * haze
    rgb = ((rgb - 0.5) * p["contrast"] + 0.5) * (p["brightness"] * p["cast"])
    # A [1 2 1]/4 blur in both directions stands in for the lens; it also softens the
    # staircase edges of the unantialiased rasterization.
    rgb[1:-1] = 0.25 * (rgb[:-2] + rgb[2:]) + 0.5 * rgb[1:-1]
    rgb[:, 1:-1] = 0.25 * (rgb[:, :-2] + rgb[:, 2:]) + 0.5 * rgb[:, 1:-1]
    # Uniform noise of the sampled standard deviation (cheaper to draw than Gaussian).
    noise = rng.random(rgb.shape, dtype=np.float32) - 0.5
    rgb += noise * np.float32(p["noise"] * math.sqrt(12.0))
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def generate_sample(seed: int, split: str, index: int, height: int = 128, width: int = 256) -> dict[str, np.ndarray]:
    """Render sample ``index`` of ``split``: a pure function of its arguments.

    Returns numpy arrays: ``image`` uint8 ``[3, H, W]``, ``segmentation`` uint8 ``[H, W]``
    (255 on the ego car's bonnet), ``disparity`` float32 ``[H, W]`` (pixels, 0 where invalid)
    and ``disparity_mask`` bool ``[H, W]``.
    """
    if split not in _SPLIT_IDS:
        raise ConfigError(f"split={split!r}: expected one of {SPLITS}")
    height, width = check_image_size(height, width)
    key = [check_int("seed", seed, minimum=0), _SPLIT_IDS[split], check_int("index", index, minimum=0)]
    scene = _sample_scene(np.random.default_rng(key + [0]))
    pixel_rng = np.random.default_rng(key + [1])
    camera = Camera(height, width, scene.horizon_fraction * height)
    canvas = _Canvas(camera, pixel_rng)
    _draw_sky(canvas, scene)
    _draw_ground(canvas, scene)
    for _, kind, params in scene.objects:
        _DRAW[kind](canvas, scene, params)
    if scene.hood:
        _draw_hood(canvas, scene)
    image = _finish(canvas, scene, pixel_rng)
    valid = np.isfinite(canvas.depth) & (canvas.depth > 0)
    disparity = np.zeros((height, width), np.float32)
    disparity[valid] = camera.focal * BASELINE / canvas.depth[valid]
    return {
        "image": np.ascontiguousarray(image.transpose(2, 0, 1)),
        "segmentation": canvas.label,
        "disparity": disparity,
        "disparity_mask": valid,
    }


# --------------------------------------------------------------------------------------
# Dataset and datamodule
# --------------------------------------------------------------------------------------


class SyntheticStreetsDataset(Dataset):
    """One rendered split held in memory: uint8 images and labels, float16 disparity, bool mask."""

    def __init__(self, seed: int, split: str, num_samples: int, height: int, width: int) -> None:
        self.split = split
        self.images = np.empty((num_samples, 3, height, width), np.uint8)
        self.labels = np.empty((num_samples, height, width), np.uint8)
        self.disparity = np.empty((num_samples, height, width), np.float16)
        self.valid = np.empty((num_samples, height, width), bool)
        for i in range(num_samples):
            sample = generate_sample(seed, split, i, height, width)
            self.images[i] = sample["image"]
            self.labels[i] = sample["segmentation"]
            self.disparity[i] = sample["disparity"]
            self.valid[i] = sample["disparity_mask"]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "image": torch.from_numpy(self.images[index]).float().div_(255.0),
            "segmentation": torch.from_numpy(self.labels[index]).long(),
            "disparity": torch.from_numpy(self.disparity[index]).float(),
            "disparity_mask": torch.from_numpy(self.valid[index].copy()),
        }


class SyntheticStreets(StreetSceneDataModule):
    """Procedurally generated street scenes with segmentation and stereo disparity; no files.

    The default dataset of cilight: ten Cityscapes classes (road, sidewalk, building, pole,
    traffic sign, vegetation, terrain, sky, person, car), rendered in memory on ``setup``.
    """

    def __init__(
        self,
        height: int = 64,
        width: int = 128,
        num_train: int = 1024,
        num_val: int = 128,
        num_test: int = 128,
        seed: int = 0,
        batch_size: int = 16,
        num_workers: int = 0,
    ) -> None:
        """Configure the synthetic dataset; nothing is rendered until ``setup``.

        Args:
            height: image height in pixels, a positive multiple of 32. The default (64x128)
                trains to far above the trivial baselines in a few CPU minutes; the scenes
                are geometry, so any larger size renders the same streets, sharper.
            width: image width in pixels, a positive multiple of 32.
            num_train: number of training samples.
            num_val: number of validation samples.
            num_test: number of test samples.
            seed: base seed (>= 0); sample i of a split depends only on (seed, split, i) and the size.
            batch_size: samples per batch in every loader.
            num_workers: loader worker processes (0 loads in the main process).
        """
        super().__init__(height=height, width=width, batch_size=batch_size, num_workers=num_workers, seed=seed)
        self.split_sizes = {
            "train": check_int("num_train", num_train, minimum=1),
            "val": check_int("num_val", num_val, minimum=1),
            "test": check_int("num_test", num_test, minimum=1),
        }
        self.num_classes = len(CLASS_NAMES)
        self.class_names = CLASS_NAMES
        self.class_colors = CLASS_COLORS
        self.save_hyperparameters()

    def _build_split(self, split: str) -> SyntheticStreetsDataset:
        n = self.split_sizes[split]
        start = time.perf_counter()
        dataset = SyntheticStreetsDataset(self.seed, split, n, self.height, self.width)
        rank_zero_info(
            f"SyntheticStreets: rendered {n} {split} samples of {self.height}x{self.width} "
            f"in {time.perf_counter() - start:.1f} s"
        )
        return dataset


__all__ = [
    "BASELINE",
    "CAMERA_HEIGHT",
    "CLASS_COLORS",
    "CLASS_NAMES",
    "FOCAL_PER_WIDTH",
    "GROUND_CLASSES",
    "HORIZON_RANGE",
    "Camera",
    "SyntheticStreets",
    "SyntheticStreetsDataset",
    "generate_sample",
    "trivial_baselines",
]
