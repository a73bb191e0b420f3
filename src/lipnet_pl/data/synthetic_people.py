"""Context-style synthetic people: left and right can only be told apart from the head.

``render_person(seed, facing)`` draws one person on a cluttered background. Everything random is
drawn from ``seed`` BEFORE ``facing`` is looked at, so the front and the back view of a seed share
the pose, outfit, background, occluders, lighting and noise: below the neck the two images are
pixel-identical, only the head differs (front: face under a hair cap, optional sunglasses; back:
hair over the whole head, no face). Labels are person-centric, as in LIP: in the front view the
person's RIGHT limbs (15, 17, 19) are on the image's left; in the back view the same pixels are
the person's LEFT limbs (14, 16, 18). Left and right limbs, shoes, gloves and socks look
identical, so a network labels them right only if it carries the facing from the head down to
the feet, which on a large person is far beyond an undilated network's reach.

Occluders (poles, bars, blobs in front of the body, never over the head) are labelled 0
(background), as LIP labels anything in front of a person. Background clutter uses the person
classes' colours too, so colour alone does not separate person from background.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from lipnet_pl.data.synthetic_draw import (
    ACCESSORIES,
    CLASS_COLOURS,
    CLASS_TEXTURE,
    OUTFITS,
    TORSO_CLASS,
    Canvas,
    lerp,
)
from lipnet_pl.data.synthetic_draw import uniform as _u

FACINGS = ("front", "back")
LEFT_RIGHT_SWAP = np.arange(256, dtype=np.uint8)
LEFT_RIGHT_SWAP[[14, 15, 16, 17, 18, 19]] = [15, 14, 17, 16, 19, 18]
"""Label lookup table: person-left <-> person-right (front view -> back view of the same pixels)."""

_FRONT_RIGHT, _FRONT_LEFT = -1, 1  # image side (x sign) of the person's right/left in a front view
_LIMB = {_FRONT_RIGHT: (15, 17, 19), _FRONT_LEFT: (14, 16, 18)}  # arm, leg, shoe


def _dir(angle_deg: float, side: int) -> tuple[float, float]:
    """Unit vector ``angle_deg`` away from straight down, turned outwards on ``side``."""
    a = math.radians(angle_deg)
    return side * math.sin(a), math.cos(a)


def _limb_pose(rng: np.random.Generator, kind: str) -> tuple[float, float]:
    """(upper, lower) segment angles in degrees from straight down, positive = outwards."""
    r = rng.random()
    if kind == "arm":
        if r < 0.55:  # hanging
            upper = _u(rng, 2, 30)
        elif r < 0.85:  # out to the side
            upper = _u(rng, 30, 100)
        else:  # raised
            upper = _u(rng, 100, 165)
        return upper, float(np.clip(upper + _u(rng, -50, 90), -25, 180))
    if r < 0.65:  # standing
        upper = _u(rng, -3, 12)
        return upper, upper + _u(rng, -10, 10)
    if r < 0.88:  # wide stance
        upper = _u(rng, 12, 32)
        return upper, upper + _u(rng, -15, 5)
    upper = _u(rng, 40, 75)  # knee raised, shin hanging back down
    return upper, upper - _u(rng, 45, 85)


def _sample_spec(rng: np.random.Generator, index: int, height: int, width: int) -> dict:
    """Every random choice of one person and its scene, drawn in a fixed order (facing-free)."""
    s: dict = {"outfit": OUTFITS[index % 4]}
    s["has"] = {a: bool(rng.random() < 0.35) or index % 5 == k for k, a in enumerate(ACCESSORIES)}
    # body, in person units (1 = head top to soles when standing; x right, y down)
    s["head_rx"], s["head_ry"] = _u(rng, 0.05, 0.06), _u(rng, 0.062, 0.07)
    s["shoulder"], s["waist"] = _u(rng, 0.095, 0.125), _u(rng, 0.7, 0.85)
    s["hip_y"], s["hip"] = _u(rng, 0.48, 0.52), _u(rng, 0.075, 0.1)
    s["arm_len"] = (_u(rng, 0.15, 0.18), _u(rng, 0.14, 0.17))
    s["arm_w"] = _u(rng, 0.055, 0.065)
    s["leg_w"] = _u(rng, 0.075, 0.09)
    s["shoe"] = (_u(rng, 0.05, 0.06), _u(rng, 0.03, 0.036))
    arms = {side: _limb_pose(rng, "arm") for side in (_FRONT_RIGHT, _FRONT_LEFT)}
    legs = {side: _limb_pose(rng, "leg") for side in (_FRONT_RIGHT, _FRONT_LEFT)}
    if rng.random() < 0.3:  # symmetric arms
        arms[_FRONT_LEFT] = arms[_FRONT_RIGHT]
    if rng.random() < 0.3:  # symmetric legs
        legs[_FRONT_LEFT] = legs[_FRONT_RIGHT]
    if legs[_FRONT_LEFT][0] > 35 and legs[_FRONT_RIGHT][0] > 35:  # someone must stand
        legs[_FRONT_LEFT] = (5.0, 5.0)
    s["arms"], s["legs"] = arms, legs
    s["sleeves"] = ("none", "short", "long")[int(rng.choice(3, p=[0.4, 0.4, 0.2]))]
    s["sleeve_frac"] = _u(rng, 0.4, 0.8)
    s["pants_hem"] = 1.0 if rng.random() < 0.5 else _u(rng, 0.35, 0.55)  # share of the leg
    s["skirt_len"], s["skirt_flare"] = _u(rng, 0.15, 0.27), _u(rng, 0.03, 0.08)
    s["strands"] = bool(rng.random() < 0.4)
    s["strand_len"] = _u(rng, 0.04, 0.1)
    s["scarf_tail"] = (_u(rng, -0.05, 0.05), _u(rng, 0.1, 0.2))
    # scene
    s["scale"] = _u(rng, 0.5, 0.98)  # person height / image height (before fitting the width)
    s["pos"] = (_u(rng, 0, 1), _u(rng, 0, 1))
    s["clutter"] = _sample_clutter(rng, int(rng.integers(5, 14)), height, width)
    s["occluders"] = int(rng.random() < 0.4) + int(rng.random() < 0.1)
    s["occluder_params"] = [rng.uniform(0, 1, size=6) for _ in range(2)]
    s["occluder_looks"] = _sample_looks(rng, 2)
    s["field"] = (
        rng.uniform(40, 215, size=3).astype(np.float32),
        _u(rng, 0.2, 0.8),
        rng.uniform(-40, 40, size=2).astype(np.float32),
    )
    s["colour_jitter"] = rng.uniform(-15, 15, size=CLASS_COLOURS.shape).astype(np.float32)
    s["light"] = (_u(rng, 0.85, 1.15), rng.uniform(-0.12, 0.12, size=2))
    s["noise_seed"] = int(rng.integers(0, 2**31))
    return s


def _sample_looks(rng: np.random.Generator, n: int) -> np.ndarray:
    """[n, 7] appearances (r, g, b, freq, angle, amplitude, unused): half borrow person colours."""
    looks = np.zeros((n, 7), np.float32)
    for k in range(n):
        if rng.random() < 0.5:
            looks[k, :3] = CLASS_COLOURS[int(rng.integers(1, 20))] + rng.uniform(-30, 30, 3)
        else:
            looks[k, :3] = rng.uniform(0, 255, 3)
        looks[k, 3:6] = (_u(rng, 2, 16), _u(rng, 0, 180), _u(rng, 0, 14))
    return looks


def _sample_clutter(rng: np.random.Generator, n: int, height: int, width: int) -> list:
    shapes = []
    for _ in range(n):
        kind = int(rng.integers(0, 4))
        cx, cy = _u(rng, 0, width), _u(rng, 0, height)
        w, h = _u(rng, 0.05, 0.5) * width, _u(rng, 0.05, 0.5) * height
        shapes.append((kind, cx, cy, w, h, _u(rng, 0, 2 * math.pi)))
    return [shapes, _sample_looks(rng, n)]


def _skeleton(s: dict) -> dict:
    """Joint positions in person units, from the spec."""
    neck = 2 * s["head_ry"] - 0.01
    j: dict = {"neck": neck, "shoulder_y": neck + 0.03}
    for side in (_FRONT_RIGHT, _FRONT_LEFT):
        sh = (side * (s["shoulder"] - 0.02), neck + 0.05)
        up, low = s["arms"][side]
        l1, l2 = s["arm_len"]
        ux, uy = _dir(up, side)
        elbow = (sh[0] + ux * l1, sh[1] + uy * l1)
        lx, ly = _dir(low, side)
        j[("arm", side)] = (sh, elbow, (elbow[0] + lx * l2, elbow[1] + ly * l2))
        hip = (side * s["hip"] * 0.5, s["hip_y"])
        seg = (0.965 - s["hip_y"]) / 2
        up, low = s["legs"][side]
        ux, uy = _dir(up, side)
        knee = (hip[0] + ux * seg, hip[1] + uy * seg)
        lx, ly = _dir(low, side)
        j[("leg", side)] = (hip, knee, (knee[0] + lx * seg, knee[1] + ly * seg))
    return j


def _extent(s: dict, j: dict) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of the person in person units, with a margin for widths."""
    pts = [(-s["shoulder"], 0.0), (s["shoulder"], 1.0)]
    for side in (_FRONT_RIGHT, _FRONT_LEFT):
        pts += list(j[("arm", side)]) + list(j[("leg", side)])
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    m = 0.04
    return min(xs) - m, min(min(ys) - m, -0.03), max(xs) + m, max(ys) + m


def _draw_label(s: dict, j: dict, canvas: Canvas, facing: str) -> tuple[float, float]:
    """Draw the person (front-view left/right classes); returns the head's pixel rows (y0, y1).

    Back to front, so that what is nearer the camera covers what is behind it: legs, lower
    garment, arms, torso, sleeves, head, scarf, hat.
    """
    _draw_legs(canvas, s, j)
    if s["outfit"] in ("shirt_pants", "jumpsuit"):
        _draw_pants(canvas, s, j)
    else:
        _draw_skirt(canvas, s)
    _draw_arms(canvas, s, j)
    _draw_torso(canvas, s, j)
    if s["sleeves"] != "none":
        _draw_sleeves(canvas, s, j)
    head_rows = _draw_head(canvas, s, j, facing)
    if s["has"]["scarf"]:
        _draw_scarf(canvas, s, j)
    if s["has"]["hat"]:
        rx, ry = s["head_rx"], s["head_ry"]
        canvas.ellipse(0.0, ry * 0.3, rx * 1.25, ry * 0.45, 1)
    return head_rows


def _draw_legs(c: Canvas, s: dict, j: dict) -> None:
    """Both legs (thigh and shin), socks on the lower shin, shoes under the ankles."""
    lw = s["leg_w"]
    for side in (_FRONT_RIGHT, _FRONT_LEFT):
        hip, knee, ankle = j[("leg", side)]
        leg_cls, shoe_cls = _LIMB[side][1], _LIMB[side][2]
        c.segment(hip, knee, lw, lw * 0.85, leg_cls)
        c.segment(knee, ankle, lw * 0.85, lw * 0.7, leg_cls)
        if s["has"]["socks"]:
            c.segment(lerp(knee, ankle, 0.7), ankle, lw * 0.78, lw * 0.74, 8, caps=False)
        rx, ry = s["shoe"]
        c.ellipse(ankle[0] + side * 0.012, ankle[1] + 0.012, rx, ry, shoe_cls)


def _draw_pants(c: Canvas, s: dict, j: dict) -> None:
    """Pants (``pants_hem`` share of the leg) or jumpsuit legs (at least 3/4), plus a waist band."""
    outfit, hy = s["outfit"], s["hip_y"]
    cls = 9 if outfit == "shirt_pants" else 10
    hem = s["pants_hem"] if outfit == "shirt_pants" else max(s["pants_hem"], 0.75)
    for side in (_FRONT_RIGHT, _FRONT_LEFT):
        hip, knee, ankle = j[("leg", side)]
        w = s["leg_w"] + 0.014
        if hem <= 0.5:  # shorts: end on the thigh
            c.segment(hip, lerp(hip, knee, hem * 2), w, w * 0.95, cls, caps=False)
        else:
            c.segment(hip, knee, w, w * 0.9, cls)
            c.segment(knee, lerp(knee, ankle, (hem - 0.5) * 2), w * 0.9, w * 0.8, cls, caps=False)
    c.rect(-s["hip"], hy - 0.04, s["hip"], hy + 0.04, cls)


def _draw_skirt(c: Canvas, s: dict) -> None:
    """Skirt (coat outfit) or the dress's flared lower part: a trapezoid from the hips."""
    hy = s["hip_y"]
    cls = 12 if s["outfit"] == "coat_skirt" else 6
    top, bottom = s["hip"] + 0.01, s["hip"] + s["skirt_flare"]
    c.poly([(-top, hy - 0.03), (top, hy - 0.03), (bottom, hy + s["skirt_len"]),
            (-bottom, hy + s["skirt_len"])], cls)  # fmt: skip


def _draw_arms(c: Canvas, s: dict, j: dict) -> None:
    """Both arms (upper arm and forearm), under the torso, and gloves on the hands."""
    aw = s["arm_w"]
    for side in (_FRONT_RIGHT, _FRONT_LEFT):
        sh, elbow, hand = j[("arm", side)]
        c.segment(sh, elbow, aw, aw * 0.9, _LIMB[side][0])
        c.segment(elbow, hand, aw * 0.9, aw * 0.75, _LIMB[side][0])
        if s["has"]["gloves"]:
            c.ellipse(*hand, aw * 0.6, aw * 0.6, 3)


def _draw_torso(c: Canvas, s: dict, j: dict) -> None:
    """The upper garment from the neck to just below the hips (lower for a coat)."""
    neck, shy, hy = j["neck"], j["shoulder_y"], s["hip_y"]
    sw, ww, hw = s["shoulder"], s["shoulder"] * s["waist"], s["hip"]
    bottom = hy + (0.05 if s["outfit"] == "coat_skirt" else 0.02)
    c.poly([(-sw * 0.5, neck), (sw * 0.5, neck), (sw, shy + 0.015), (ww, (shy + hy) / 2),
            (hw, bottom), (-hw, bottom), (-ww, (shy + hy) / 2), (-sw, shy + 0.015)],
           TORSO_CLASS[s["outfit"]])  # fmt: skip


def _draw_sleeves(c: Canvas, s: dict, j: dict) -> None:
    """Short sleeves (``sleeve_frac`` of the upper arm) or long ones (to 80% of the forearm)."""
    torso_cls = TORSO_CLASS[s["outfit"]]
    for side in (_FRONT_RIGHT, _FRONT_LEFT):
        sh, elbow, hand = j[("arm", side)]
        w = s["arm_w"] + 0.012
        if s["sleeves"] == "short":
            c.segment(sh, lerp(sh, elbow, s["sleeve_frac"]), w, w * 0.95, torso_cls, caps=False)
            c.ellipse(*sh, w / 2, w / 2, torso_cls)
        else:
            c.segment(sh, elbow, w, w * 0.9, torso_cls)
            c.segment(elbow, lerp(elbow, hand, 0.8), w * 0.9, w * 0.8, torso_cls, caps=False)


def _draw_head(c: Canvas, s: dict, j: dict, facing: str) -> tuple[float, float]:
    """Hair strands (identical in both views), then the only facing-dependent part: a face
    (front, maybe sunglasses) or hair (back) under the hair cap. Returns its pixel rows."""
    rx, ry = s["head_rx"], s["head_ry"]
    if s["strands"]:
        for side in (-1, 1):
            x = side * rx * 0.95
            c.segment((x, ry), (x + side * 0.01, j["neck"] + s["strand_len"]), 0.03, 0.025, 2)
    cap = c.ellipse(0.0, ry * 0.75, rx * 1.08, ry * 0.8, 2)
    face = c.ellipse(0.0, ry * 1.12, rx * 0.9, ry * 0.88, 13 if facing == "front" else 2)
    if facing == "front" and s["has"]["sunglasses"]:
        c.rect(-rx * 0.85, ry * 0.95, rx * 0.85, ry * 1.3, 4)
    return min(cap[1], face[1]), max(cap[3], face[3])


def _draw_scarf(c: Canvas, s: dict, j: dict) -> None:
    """A band round the neck and a tail hanging from it."""
    neck, sw = j["neck"], s["shoulder"]
    c.rect(-sw * 0.62, neck - 0.005, sw * 0.62, neck + 0.035, 11)
    tx, tl = s["scarf_tail"]
    c.rect(tx - 0.02, neck, tx + 0.02, neck + tl, 11)


def _shapes_index(shapes: list, height: int, width: int) -> np.ndarray:
    """uint8 map: 0 = none, k = clutter shape k (later shapes on top)."""
    img = Image.new("L", (width, height), 0)
    d = ImageDraw.Draw(img)
    for k, (kind, cx, cy, w, h, rot) in enumerate(shapes, start=1):
        if kind == 0:
            d.rectangle([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], fill=k)
        elif kind == 1:
            d.ellipse([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], fill=k)
        elif kind == 2:
            pts = [
                (cx + w / 2 * math.cos(rot + t), cy + h / 2 * math.sin(rot + t))
                for t in (0.0, 2.1, 4.2)
            ]
            d.polygon(pts, fill=k)
        else:
            dx, dy = w / 2 * math.cos(rot), h / 2 * math.sin(rot)
            d.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=k, width=max(2, int(w / 8)))
    return np.asarray(img, dtype=np.uint8)


def _occluder_index(
    s: dict, box: tuple[int, int, int, int], neck_row: int, height: int, width: int
):
    """uint8 map of the occluders (0 = none, k = occluder k), all below the neck row."""
    img = Image.new("L", (width, height), 0)
    d = ImageDraw.Draw(img)
    x0, y0, x1, y1 = box
    pw, ph = max(x1 - x0, 1), max(y1 - neck_row, 1)
    for k in range(s["occluders"]):
        a, b, c, e, f, g = (float(v) for v in s["occluder_params"][k])
        if a < 0.4:  # pole
            w = (0.08 + 0.14 * b) * pw
            cx = x0 + c * pw
            top = neck_row + 2 + e * 0.5 * ph
            d.rectangle([cx - w / 2, top, cx + w / 2, height], fill=k + 1)
        elif a < 0.75:  # bar, e.g. a table or a railing
            h = (0.07 + 0.12 * b) * ph
            cy = neck_row + 2 + h / 2 + (0.3 + 0.6 * c) * (ph - h)
            left = x0 - 0.2 * pw + e * 0.6 * pw
            d.rectangle([left, cy - h / 2, left + (0.4 + 0.6 * f) * pw, cy + h / 2], fill=k + 1)
        else:  # blob, e.g. a bag
            rx, ry = (0.12 + 0.15 * b) * pw, (0.06 + 0.08 * g) * ph
            cx, cy = x0 + c * pw, neck_row + 2 + ry + e * (ph - 2 * ry)
            d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=k + 1)
    occ = np.asarray(img, dtype=np.uint8).copy()
    occ[: neck_row + 1] = 0
    return occ


def _paint(image: np.ndarray, index: np.ndarray, looks: np.ndarray, xx, yy) -> None:
    """Paint shape ``k`` of ``index`` (0 = none) with ``looks[k - 1]``: colour + own stripes."""
    where = np.nonzero(index)
    if not where[0].size:
        return
    lk = looks[index[where].astype(np.int64) - 1]
    freq = lk[:, 3] * (2 * np.pi / 100)
    theta = np.deg2rad(lk[:, 4])
    x, y = xx[where], yy[where]
    stripes = np.sin(freq * (x * np.cos(theta) + y * np.sin(theta))) * lk[:, 5]
    image[where] = lk[:, :3] + stripes[:, None]


def render_person(
    seed: int | Sequence[int],
    facing: str = "front",
    height: int = 288,
    width: int = 224,
    index: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(image HxWx3 uint8, label HxW uint8, metadata) of one person seen from ``facing``.

    ``seed`` fixes everything but the facing; ``index`` picks the outfit (``index % 4``) and one
    forced accessory (``index % 5``) so that consecutive indices cover every class. Metadata:
    ``facing``, ``scale`` (person box height / image height), ``box`` [x0, y0, x1, y1) in pixels
    (before occlusion), ``neck_row`` (rows >= it are identical in both facings), ``outfit``,
    ``occluded`` (share of the person's pixels hidden by occluders, labelled background).
    """
    if facing not in FACINGS:
        raise ValueError(f"facing must be one of {FACINGS}, got {facing!r}")
    height, width = int(height), int(width)
    if min(height, width) < 16:
        raise ValueError(f"need height and width >= 16, got {height}x{width}")
    rng = np.random.default_rng(seed)
    s = _sample_spec(rng, int(index), height, width)
    j = _skeleton(s)
    ex0, ey0, ex1, ey1 = _extent(s, j)
    ph = s["scale"] * height / (ey1 - ey0)
    ph = min(ph, 0.96 * width / (ex1 - ex0))
    px, py = s["pos"]
    ox = -ex0 * ph + px * (width - (ex1 - ex0) * ph)
    oy = -ey0 * ph + py * (height - (ey1 - ey0) * ph)
    label_img = Image.new("L", (width, height), 0)
    head_y0, head_y1 = _draw_label(s, j, Canvas(label_img, ox, oy, ph, ph), facing)
    label = np.asarray(label_img, dtype=np.uint8)
    if facing == "back":
        label = LEFT_RIGHT_SWAP[label]
    neck_row = min(int(math.floor(head_y1)) + 2, height)
    rows, cols = np.nonzero(label)
    box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # background: tinted field with a gradient, then clutter shapes
    colour, mute, (gx, gy) = s["field"]
    field = colour * (1 - mute) + colour.mean() * mute
    image = field + (gx * (xx / width - 0.5) + gy * (yy / height - 0.5))[..., None]
    shapes, looks = s["clutter"]
    _paint(image, _shapes_index(shapes, height, width), looks, xx, yy)
    # person: class colour + class stripes (left and right identical)
    colours = CLASS_COLOURS + s["colour_jitter"]
    colours[[15, 17, 19]] = colours[[14, 16, 18]]
    person_looks = np.zeros((20, 6), np.float32)
    person_looks[:, :3], person_looks[:, 3:5], person_looks[:, 5] = colours, CLASS_TEXTURE, 9.0
    _paint(image, label, person_looks[1:], xx, yy)
    # occluders in front of the body (labelled background)
    occ = _occluder_index(s, box, neck_row, height, width)
    occluded = float(((occ > 0) & (label > 0)).sum()) / max(int((label > 0).sum()), 1)
    _paint(image, occ, s["occluder_looks"], xx, yy)
    label = np.where(occ > 0, 0, label).astype(np.uint8)
    # light: gain and a gradient over the whole scene, then sensor noise
    gain, (lx, ly) = s["light"]
    image *= (gain * (1 + lx * (xx / width - 0.5) + ly * (yy / height - 0.5)))[..., None]
    noise = np.random.default_rng(s["noise_seed"]).standard_normal(image.shape, np.float32)
    image += 6.0 * noise
    meta = {
        "facing": facing,
        "scale": round((box[3] - box[1]) / height, 4),
        "box": list(box),
        "neck_row": neck_row,
        "head_rows": [max(int(math.floor(head_y0)), 0), neck_row],
        "outfit": s["outfit"],
        "occluded": round(occluded, 4),
    }
    return np.clip(image, 0, 255).astype(np.uint8), np.ascontiguousarray(label), meta
