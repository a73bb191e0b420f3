"""LIP class metadata: the one source of truth for names, colours, flip pairs and the ignore index.

Custom datasets override these through Hydra (``data.classes``); everything else in the code
reads a :class:`ClassInfo` instead of hard-coding LIP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

IGNORE_INDEX = 255
"""Label value excluded from the loss and every metric (padding and warps are filled with it)."""

LIP_CLASS_NAMES: tuple[str, ...] = (
    "Background",
    "Hat",
    "Hair",
    "Glove",
    "Sunglasses",
    "Upper-clothes",
    "Dress",
    "Coat",
    "Socks",
    "Pants",
    "Jumpsuits",
    "Scarf",
    "Skirt",
    "Face",
    "Left-arm",
    "Right-arm",
    "Left-leg",
    "Right-leg",
    "Left-shoe",
    "Right-shoe",
)

# The PASCAL-VOC bit palette that SCHP/CE2P use to draw LIP parsings.
LIP_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (128, 0, 0),
    (0, 128, 0),
    (128, 128, 0),
    (0, 0, 128),
    (128, 0, 128),
    (0, 128, 128),
    (128, 128, 128),
    (64, 0, 0),
    (192, 0, 0),
    (64, 128, 0),
    (192, 128, 0),
    (64, 0, 128),
    (192, 0, 128),
    (64, 128, 128),
    (192, 128, 128),
    (0, 64, 0),
    (128, 64, 0),
    (0, 192, 0),
    (128, 192, 0),
)

LIP_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((14, 15), (16, 17), (18, 19))
"""(left, right) class ids swapped whenever an image is mirrored horizontally."""

NUM_LIP_CLASSES = len(LIP_CLASS_NAMES)


@dataclass(frozen=True)
class ClassInfo:
    """Names, palette and left/right pairs of a parsing label set."""

    names: tuple[str, ...] = LIP_CLASS_NAMES
    palette: tuple[tuple[int, int, int], ...] = LIP_PALETTE
    flip_pairs: tuple[tuple[int, int], ...] = LIP_FLIP_PAIRS
    ignore_index: int = IGNORE_INDEX
    _perm: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.names)
        if n < 1:
            raise ValueError(f"classes.names must list at least one class, got {list(self.names)}")
        if len(self.palette) != n:
            raise ValueError(
                f"classes.palette has {len(self.palette)} colours but classes.names has {n} "
                "classes: give one [r, g, b] per class"
            )
        for colour in self.palette:
            if len(colour) != 3 or not all(0 <= int(c) <= 255 for c in colour):
                raise ValueError(
                    f"classes.palette entry {list(colour)} is not an [r, g, b] in 0..255"
                )
        if 0 <= self.ignore_index < n:
            raise ValueError(
                f"classes.ignore_index={self.ignore_index} collides with a class id (0..{n - 1})"
            )
        perm = list(range(n))
        seen: set[int] = set()
        for pair in self.flip_pairs:
            if len(pair) != 2:
                raise ValueError(
                    f"classes.flip_pairs entry {list(pair)} is not a [left, right] pair"
                )
            a, b = int(pair[0]), int(pair[1])
            for c in (a, b):
                if not 0 <= c < n:
                    raise ValueError(
                        f"classes.flip_pairs entry {[a, b]} names class {c}, outside 0..{n - 1}"
                    )
                if c in seen:
                    raise ValueError(f"classes.flip_pairs uses class {c} twice")
                seen.add(c)
            perm[a], perm[b] = b, a
        object.__setattr__(self, "_perm", tuple(perm))

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def flip_permutation(self) -> tuple[int, ...]:
        """``perm[c]`` is the class that ``c`` becomes in a mirrored image (identity off-pairs).

        Use it both to remap label values and to reorder logit channels of a flipped prediction.
        """
        return self._perm

    def to_dict(self) -> dict:
        """Primitive form (lists and ints) for checkpoints, JSON and ONNX metadata;
        :meth:`from_config` reads it back."""
        return {
            "names": list(self.names),
            "palette": [list(c) for c in self.palette],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "ignore_index": int(self.ignore_index),
        }

    @classmethod
    def from_config(cls, cfg: Mapping | None = None) -> ClassInfo:
        """Build from a (Hydra) mapping with optional keys names / palette / flip_pairs / ignore_index.

        ``num_classes`` alone (no names) gives generic names ``class_<i>`` and a generated palette.
        """
        if not cfg:
            return cls()
        cfg = dict(cfg)
        names = cfg.get("names")
        num_classes = cfg.get("num_classes")
        if names is None:
            if num_classes is None or int(num_classes) == NUM_LIP_CLASSES:
                names = LIP_CLASS_NAMES
            else:
                names = tuple(f"class_{i}" for i in range(int(num_classes)))
        names = tuple(str(n) for n in names)
        if num_classes is not None and int(num_classes) != len(names):
            raise ValueError(
                f"classes.num_classes={num_classes} but classes.names lists {len(names)} names"
            )
        palette = cfg.get("palette")
        if palette is None:
            palette = LIP_PALETTE if names == LIP_CLASS_NAMES else make_palette(len(names))
        flip_pairs = cfg.get("flip_pairs")
        if flip_pairs is None:
            flip_pairs = LIP_FLIP_PAIRS if names == LIP_CLASS_NAMES else ()
        return cls(
            names=names,
            palette=tuple(tuple(int(c) for c in colour) for colour in palette),
            flip_pairs=tuple(tuple(int(c) for c in pair) for pair in flip_pairs),
            ignore_index=int(cfg.get("ignore_index", IGNORE_INDEX)),
        )


def make_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    """The VOC bit palette extended to ``n`` colours (same first 20 colours as LIP)."""
    out = []
    for i in range(n):
        r = g = b = 0
        c, j = i, 0
        while c:
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
            j += 1
        out.append((r, g, b))
    return tuple(out)


LIP = ClassInfo()
