"""Scene sampling of SyntheticStreets: classes, camera, and the layout of one street in world coordinates.

A scene is drawn from a seeded generator before any pixel exists (metres; X right, Y down,
Z forward, camera at the origin, ground at ``Y = CAMERA_HEIGHT``): road width, sidewalks and
verges, buildings and their facade styles, trees, hedges, poles and signs, parked and moving
cars, pedestrians, the lighting and the colour palette. :mod:`.render` projects it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

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

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

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
CLOUD_COLOR = np.array([0.95, 0.95, 0.96], np.float32)
# Texture strength of the ground materials: (fine grain, mid blotches, coarse patches).
GROUND_TEXTURE = {ROAD: (0.07, 0.04, 0.05), SIDEWALK: (0.05, 0.0, 0.04), TERRAIN: (0.15, 0.15, 0.12)}


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
class Scene:
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


def sample_scene(rng: np.random.Generator) -> Scene:
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
    scene = Scene(
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


def _place_buildings(r: _Draws, scene: Scene) -> None:
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


def _add_tree(r: _Draws, scene: Scene, x: float, z: float) -> None:
    crown = r.uniform(1.5, 3.2)
    scene.add("tree", z, x=x, z=z, trunk=r.uniform(1.8, 3.2), rx=crown, ry=crown * r.uniform(0.9, 1.4),
              leaf=r.jitter(_LEAF, 0.25), bark=r.jitter((0.28, 0.22, 0.17), 0.2))


def _place_street_furniture(r: _Draws, scene: Scene) -> None:
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


def _add_person(r: _Draws, scene: Scene, x: float, z: float) -> None:
    if r.chance(0.6):
        shirt = (r.uniform(0.05, 0.9), r.uniform(0.05, 0.9), r.uniform(0.05, 0.9))
    else:
        shirt = (r.uniform(0.05, 0.8),) * 3
    scene.add("person", z, x=x, z=z, height=r.uniform(1.55, 1.95), stride=r.uniform(0.0, 0.6), shirt=shirt,
              trousers=r.jitter(r.pick(_TROUSER_COLORS), 0.1), skin=r.jitter(r.pick(_SKIN_COLORS), 0.08),
              hair=r.jitter((0.12, 0.09, 0.07), 0.5))


def _add_car(r: _Draws, scene: Scene, x: float, z: float, away: bool) -> None:
    scene.add("car", z, x=x, z=z, width=r.uniform(1.7, 2.0), height=r.uniform(1.35, 1.7),
              length=r.uniform(3.9, 4.9), away=away, color=r.jitter(r.pick(_CAR_COLORS), 0.08),
              glass=r.jitter((0.08, 0.1, 0.13), 0.3))


def _place_traffic(r: _Draws, scene: Scene) -> None:
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
