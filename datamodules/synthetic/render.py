"""Rendering of SyntheticStreets: a sampled scene projected into image, labels and disparity.

A depth buffer resolves occlusion (objects visited front to back, so hidden ones are skipped
cheaply); the disparity of a pixel is ``f·B/Z`` of what it shows (:data:`~.scene.BASELINE`).
:func:`generate_sample` is the pure function ``(seed, split, index, size) → sample``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from cilight.datamodules.common import SPLITS, check_image_size, check_int
from cilight.datamodules.synthetic.scene import (
    BASELINE,
    BUILDING,
    CAMERA_HEIGHT,
    CAR,
    CLASS_NAMES,
    CLOUD_COLOR,
    GROUND_TEXTURE,
    IGNORE,
    PERSON,
    POLE,
    ROAD,
    SIDEWALK,
    SIGN,
    SKY,
    SPLIT_IDS,
    TERRAIN,
    VEGETATION,
    Camera,
    Scene,
    sample_scene,
)
from cilight.errors import ConfigError

# colours of the parts the renderer adds to objects (lights, plates, tyres, sign faces)
_RED, _WHITE, _BLUE, _YELLOW = (0.75, 0.08, 0.08), (0.92, 0.92, 0.9), (0.1, 0.25, 0.65), (0.95, 0.75, 0.1)
_TAIL_LIGHT, _HEAD_LIGHT = (0.75, 0.06, 0.05), (0.95, 0.93, 0.82)
_TYRE, _PLATE, _SHOE = (0.05, 0.05, 0.05), (0.88, 0.88, 0.88), (0.08, 0.08, 0.08)

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


def _shade_at(scene: Scene, x: float) -> float:
    """Brightness of something standing at ``x``: darker in the shadow the sun-side buildings cast."""
    if scene.sun and scene.sun * (x - scene.road_center) > scene.shadow_edge:
        return scene.palette["shade"]
    return 1.0


def _first_ground_row(camera: Camera) -> int:
    return _pixel_range(camera.horizon + 1e-3, camera.height + 1, camera.height).start


def _draw_sky(canvas: _Canvas, scene: Scene) -> None:
    """Gradient from the horizon haze to the zenith, with clouds; only above the horizon."""
    cam, p = canvas.camera, scene.palette
    rows = slice(0, _first_ground_row(cam))
    if rows.stop == 0:
        return
    t = np.clip((cam.horizon - canvas.rows[rows]) / max(cam.horizon, 1.0), 0.0, 1.0)[:, None, None] ** 0.7
    gradient = p["horizon"] * (1 - t) + p["zenith"] * t
    clouds = np.clip((canvas.coarse[rows] + 0.5 * canvas.mid[rows] - 1.4 + 1.6 * p["cloudiness"]) * 0.8, 0.0, 1.0)
    clouds = clouds[..., None]
    canvas.rgb[rows] = gradient * (1 - clouds) + CLOUD_COLOR * (0.85 + 0.15 * t) * clouds


def _draw_ground(canvas: _Canvas, scene: Scene) -> None:
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
        amplitude[:, cls] = GROUND_TEXTURE[cls]
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


def _road_markings(scene: Scene, rel, dist, Z) -> np.ndarray:
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


def _draw_building(canvas: _Canvas, scene: Scene, b: dict) -> None:
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


def _draw_block(canvas: _Canvas, scene: Scene, b: dict) -> None:
    win = canvas.billboard(b["x0"], b["x1"], 0.0, b["height"], b["z"])
    if win is not None:
        rows, cols, X, Y = win
        _paint_facade(canvas, rows, cols, b["z"], X - b["x0"], Y, b, 0.95)


def _draw_treeline(canvas: _Canvas, scene: Scene, t: dict) -> None:
    win = canvas.billboard(t["x0"], t["x1"], 0.0, t["height"] * 1.3, t["z"])
    if win is None:
        return
    rows, cols, X, Y = win
    top = t["height"] * (1 + 0.15 * canvas.mid[rows, cols] + 0.1 * np.sin(X * 0.7))
    canvas.paint(rows, cols, (Y >= 0) & (Y < top), t["z"], VEGETATION, _palette(t["leaf"]), texture=(0.25, 0.25, 0))


def _draw_tree(canvas: _Canvas, scene: Scene, t: dict) -> None:
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


def _draw_hedge(canvas: _Canvas, scene: Scene, h: dict) -> None:
    win = canvas.side_plane(h["x"], h["z0"], h["z1"], 0.0, h["height"] * 1.2)
    if win is None:
        return
    rows, cols, Z, Y = win
    mask = (Y >= 0) & (Y < h["height"] * (1 + 0.12 * canvas.mid[rows, cols]))
    colors = _palette(scene.palette["hedge"], scale=0.9 * _shade_at(scene, h["x"]))
    canvas.paint(rows, cols, mask, Z, VEGETATION, colors, texture=(0.3, 0.25, 0.0))


def _draw_pole(canvas: _Canvas, scene: Scene, p: dict) -> None:
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


def _draw_person(canvas: _Canvas, scene: Scene, p: dict) -> None:
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


def _draw_car(canvas: _Canvas, scene: Scene, c: dict) -> None:
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


def _draw_hood(canvas: _Canvas, scene: Scene) -> None:
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


def _finish(canvas: _Canvas, scene: Scene, rng: np.random.Generator) -> np.ndarray:
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
    if split not in SPLIT_IDS:
        raise ConfigError(f"split={split!r}: expected one of {SPLITS}")
    height, width = check_image_size(height, width)
    key = [check_int("seed", seed, minimum=0), SPLIT_IDS[split], check_int("index", index, minimum=0)]
    scene = sample_scene(np.random.default_rng(key + [0]))
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
