"""What both synthetic styles share: the class appearance table and a label canvas.

One definition on purpose: the ``simple`` (``synthetic``) and ``context`` (``synthetic_people``)
generators must paint every class the same way, and a second copy could silently drift. Kept
free of imports from either generator so that both can import it without a cycle.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

OUTFITS = ("shirt_pants", "coat_skirt", "dress", "jumpsuit")
ACCESSORIES = ("hat", "sunglasses", "scarf", "gloves", "socks")
TORSO_CLASS = {"shirt_pants": 5, "coat_skirt": 7, "dress": 6, "jumpsuit": 10}
# Appearance (RGB) per class id; the left/right pairs (14,15), (16,17), (18,19) share one
# appearance on purpose, so only position or context tells them apart.
CLASS_COLOURS = np.array(
    [
        (128, 128, 128),  # 0 background (never shown: each style paints its own background)
        (220, 40, 40),  # 1 hat
        (70, 40, 20),  # 2 hair
        (250, 250, 245),  # 3 glove
        (15, 15, 15),  # 4 sunglasses
        (40, 90, 220),  # 5 upper-clothes
        (210, 60, 180),  # 6 dress
        (140, 95, 40),  # 7 coat
        (240, 220, 50),  # 8 socks
        (25, 35, 95),  # 9 pants
        (40, 160, 70),  # 10 jumpsuits
        (250, 140, 30),  # 11 scarf
        (150, 50, 220),  # 12 skirt
        (245, 195, 165),  # 13 face
        (215, 150, 105),  # 14 left-arm
        (215, 150, 105),  # 15 right-arm
        (170, 110, 75),  # 16 left-leg
        (170, 110, 75),  # 17 right-leg
        (0, 165, 165),  # 18 left-shoe
        (0, 165, 165),  # 19 right-shoe
    ],
    dtype=np.float32,
)
# Stripe texture per class: (spatial frequency in cycles per 100 px, orientation in degrees).
CLASS_TEXTURE = np.array([(3 + (c * 7) % 11, (c * 37) % 180) for c in range(20)], np.float32)
CLASS_TEXTURE[[15, 17, 19]] = CLASS_TEXTURE[[14, 16, 18]]


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One ``rng.uniform(lo, hi)`` draw as a Python float."""
    return float(rng.uniform(lo, hi))


Point = tuple[float, float]


def lerp(p0: Point, p1: Point, t: float) -> Point:
    """The point a share ``t`` of the way from ``p0`` to ``p1`` (e.g. where a sleeve ends)."""
    return p0[0] + (p1[0] - p0[0]) * t, p0[1] + (p1[1] - p0[1]) * t


class Canvas:
    """Draws class ids on a PIL "L" image in body units: ``x = ox + ux * sx``, ``y = oy + uy * sy``.

    Shapes are described in units of the person (so a pose is independent of the image size);
    the canvas alone knows where the person stands and how large it is in pixels.
    """

    def __init__(self, label: Image.Image, ox: float, oy: float, sx: float, sy: float):
        self.d = ImageDraw.Draw(label)
        self.ox, self.oy, self.sx, self.sy = ox, oy, sx, sy

    def px(self, x: float, y: float) -> Point:
        return self.ox + x * self.sx, self.oy + y * self.sy

    def poly(self, points: Sequence[Point], cls: int) -> None:
        self.d.polygon([self.px(*p) for p in points], fill=cls)

    def rect(self, x0: float, y0: float, x1: float, y1: float, cls: int) -> None:
        """Axis-aligned box, drawn as the polygon (x0,y0) (x1,y0) (x1,y1) (x0,y1)."""
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], cls)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, cls: int) -> tuple[float, ...]:
        """Ellipse centred at (cx, cy); returns its pixel box (x0, y0, x1, y1)."""
        box = (*self.px(cx - rx, cy - ry), *self.px(cx + rx, cy + ry))
        self.d.ellipse(box, fill=cls)
        return box

    def segment(self, p0: Point, p1: Point, w0: float, w1: float, cls: int, caps=True) -> None:
        """A limb segment of width w0 at p0 to w1 at p1, with round ends."""
        dx, dy = p1[0] - p0[0], p1[1] - p0[1]
        n = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / n, dx / n
        a, b = w0 / 2, w1 / 2
        self.poly(
            [
                (p0[0] + nx * a, p0[1] + ny * a),
                (p1[0] + nx * b, p1[1] + ny * b),
                (p1[0] - nx * b, p1[1] - ny * b),
                (p0[0] - nx * a, p0[1] - ny * a),
            ],
            cls,
        )
        if caps:
            self.ellipse(*p0, a, a, cls)
            self.ellipse(*p1, b, b, cls)
