"""Procedurally drawn pictures whose answers are known: scenes of coloured shapes in three
horizontal slots (so "left of" is never ambiguous), and rendered words for the text-reading tasks.

A `Scene` is plain data (objects with shape, colour, slot); `draw_scene` renders it with PIL. Every
choice comes from the `random.Random` passed in, so the same seed gives the same pixels.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

SIZE = 64  # pixels; the demo towers resize to 35 (VL-Mamba) / 42 (Cobra)
SHAPES = ("circle", "square", "triangle")
COLORS = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 70, 230), "yellow": (235, 200, 20)}
WORDS = ("cat", "dog", "sun", "car", "box", "hat", "cup", "pen")
SLOTS = 3  # left, middle, right
BACKGROUND = (235, 235, 235)


@dataclass(frozen=True)
class Obj:
    shape: str
    color: str
    slot: int  # 0 = left ... SLOTS-1 = right


@dataclass
class Scene:
    objects: list[Obj] = field(default_factory=list)
    jitter: tuple[int, ...] = ()  # per-object vertical offset in pixels
    size_px: int = SIZE

    @property
    def shapes(self) -> set[str]:
        return {o.shape for o in self.objects}

    def by_shape(self, shape: str) -> Obj | None:
        return next((o for o in self.objects if o.shape == shape), None)

    def by_color(self, color: str) -> Obj | None:
        return next((o for o in self.objects if o.color == color), None)

    def has(self, shape: str, color: str | None = None) -> bool:
        return any(o.shape == shape and (color is None or o.color == color) for o in self.objects)


def random_scene(rng: random.Random, n_min: int = 1, n_max: int = 3, size: int = SIZE) -> Scene:
    """1-3 objects with distinct shapes, distinct colours and distinct slots."""
    n = rng.randint(n_min, min(n_max, len(SHAPES), SLOTS))
    shapes = rng.sample(SHAPES, n)
    colors = rng.sample(sorted(COLORS), n)
    slots = sorted(rng.sample(range(SLOTS), n))
    rng.shuffle(slots)
    objs = [Obj(s, c, p) for s, c, p in zip(shapes, colors, slots, strict=True)]
    return Scene(objs, tuple(rng.randint(-size // 8, size // 8) for _ in objs), size)


def draw_scene(scene: Scene):
    from PIL import Image, ImageDraw

    s = scene.size_px
    img = Image.new("RGB", (s, s), BACKGROUND)
    d = ImageDraw.Draw(img)
    r = s // 7  # half the object's size
    for obj, dy in zip(scene.objects, scene.jitter or (0,) * len(scene.objects), strict=True):
        cx = int((obj.slot + 0.5) * s / SLOTS)
        cy = s // 2 + dy
        fill = COLORS[obj.color]
        if obj.shape == "circle":
            d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif obj.shape == "square":
            d.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
        elif obj.shape == "triangle":
            d.polygon([(cx, cy - r - 1), (cx - r - 1, cy + r), (cx + r + 1, cy + r)], fill=fill)
        else:  # pragma: no cover - SHAPES is closed
            raise ValueError(obj.shape)
    return img


def draw_word(word: str, color: str = "blue", rng: random.Random | None = None, size: int = SIZE):
    """A word in large block letters (PIL's default font, scaled up) on a light background."""
    from PIL import Image, ImageDraw

    small = Image.new("RGB", (6 * len(word) + 2, 12), BACKGROUND)
    ImageDraw.Draw(small).text((1, 0), word, fill=COLORS.get(color, (0, 0, 0)))
    scale = max(1, (size - 4) // small.width)
    big = small.resize((small.width * scale, small.height * scale), resample=0)
    img = Image.new("RGB", (size, size), BACKGROUND)
    dy = (rng.randint(-size // 6, size // 6) if rng else 0)
    img.paste(big, ((size - big.width) // 2, (size - big.height) // 2 + dy))
    return img


def blank_image(rng: random.Random, size: int = SIZE):
    """A picture with nothing on it (a flat grey with a little noise): questions about it are unanswerable."""
    from PIL import Image

    g = rng.randint(120, 200)
    img = Image.new("RGB", (size, size), (g, g, g))
    px = img.load()
    for _ in range(size * 2):
        x, y = rng.randrange(size), rng.randrange(size)
        v = g + rng.randint(-30, 30)
        px[x, y] = (v, v, v)
    return img
