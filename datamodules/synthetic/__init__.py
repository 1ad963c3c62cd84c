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

The package is split by layer: :mod:`.scene` samples the street, :mod:`.render` draws it,
:mod:`.dataset` holds the rendered splits and the DataModule.
"""

from cilight.datamodules.synthetic.dataset import SyntheticStreets, SyntheticStreetsDataset
from cilight.datamodules.synthetic.render import generate_sample
from cilight.datamodules.synthetic.scene import (
    BASELINE,
    CAMERA_HEIGHT,
    CLASS_COLORS,
    CLASS_NAMES,
    FOCAL_PER_WIDTH,
    GROUND_CLASSES,
    HORIZON_RANGE,
    IGNORE,
    ROAD,
    SKY,
    Camera,
)

__all__ = [
    "BASELINE",
    "CAMERA_HEIGHT",
    "CLASS_COLORS",
    "CLASS_NAMES",
    "FOCAL_PER_WIDTH",
    "GROUND_CLASSES",
    "HORIZON_RANGE",
    "IGNORE",
    "ROAD",
    "SKY",
    "Camera",
    "SyntheticStreets",
    "SyntheticStreetsDataset",
    "generate_sample",
]
