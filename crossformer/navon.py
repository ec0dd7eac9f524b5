"""Cross-scale "Navon" figures: a large *global* shape drawn out of many small *local* shapes.

The task the demo CrossFormer is trained on (``crossformer_demo``, see ``assets/MODEL_CARD.md``).
Telling "a triangle of squares" from "a square of triangles" needs fine detail (what each small element
is: small CEL kernels, short-distance attention) *and* the layout over the whole image (which shape the
elements form together: large CEL kernels, long-distance attention).

* :data:`SHAPES` — the five shapes, used both globally and locally; :data:`CLASS_NAMES` — the 25
  classes ``"<global> of <local>s"``; label ``= global_index · 5 + local_index``.
* :func:`sample_navon` ``(rng, size) → (image, label)`` — a random figure (training / evaluation).
* :func:`render_navon` ``(global_shape, local_shape, size, element_size, seed) → image`` — one figure
  with chosen shapes (the app's generator widgets).
* :func:`sample_params` / :func:`render` — the same in two steps, with every random choice spelled out
  in a :class:`NavonParams`; ``render(..., layers=True)`` also returns the ink and region masks.

Geometry: the element lattice is aligned with the global shape's frame. A lattice cell holds an element
iff its centre lies inside the global shape, so elements are always whole and the global outline is
never drawn as a line — it only exists as the arrangement of the elements. Element size is in pixels
(the same at every image size, 7–15 px by default), the global shape scales with the image and spans
at least :data:`MIN_ELEMENTS_ACROSS` lattice pitches, so a local element is always small next to the
global shape. Shapes are rasterised from signed distance functions with one pixel of antialiasing.

NumPy only (no torch, no PIL). Images are ``uint8 (H, W, 3)`` RGB.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

#: The five shapes, in label order. All are drawn inside the unit disc.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring")
NUM_SHAPES = len(SHAPES)
NUM_CLASSES = NUM_SHAPES * NUM_SHAPES


def _plural(shape: str) -> str:
    return shape + ("es" if shape.endswith("s") else "s")


#: ``CLASS_NAMES[g·5 + l] = "<global> of <local>s"``, e.g. ``"triangle of squares"``.
CLASS_NAMES: tuple[str, ...] = tuple(f"{g} of {_plural(l)}" for g in SHAPES for l in SHAPES)

#: The lattice spans at least this many element pitches across the global shape's diameter.
MIN_ELEMENTS_ACROSS = 7.0
#: Default element size range in pixels (diameter of the element's bounding disc).
ELEMENT_SIZE_RANGE = (7.0, 15.0)
#: Default rotation range (± degrees) of the global shape and, independently, of the elements.
MAX_ROTATION = 30.0
#: Smallest element the sampler will draw when a small image forces elements down.
MIN_ELEMENT_SIZE = 5.0


def label_of(global_shape: str, local_shape: str) -> int:
    """Class index of ``"<global> of <local>s"``."""
    return SHAPES.index(global_shape) * NUM_SHAPES + SHAPES.index(local_shape)


def split_label(label: int | np.ndarray) -> tuple[Any, Any]:
    """``label → (global_index, local_index)`` (works on ints and integer arrays)."""
    return label // NUM_SHAPES, label % NUM_SHAPES


# ---- signed distances of the shapes in the unit disc -----------------------------------------------
def _box(x: np.ndarray, y: np.ndarray, hx: float, hy: float) -> np.ndarray:
    """Exact signed distance to an axis-aligned box of half sides ``hx, hy``."""
    dx, dy = np.abs(x) - hx, np.abs(y) - hy
    outside = np.hypot(np.maximum(dx, 0.0), np.maximum(dy, 0.0))
    inside = np.minimum(np.maximum(dx, dy), 0.0)
    return outside + inside


_TRI_NORMALS = np.array([[math.cos(a), math.sin(a)] for a in
                         (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3)])


def shape_sdf(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) of ``shape`` at points ``(x, y)``, in unit-disc units.

    ``x, y`` any broadcastable shape, ``y`` pointing down (image rows). Each shape fits in the unit disc
    and has a similar visual weight: circle r 0.85; square half side 0.72; equilateral triangle of
    circumradius 1 (apex up); plus sign of half length 0.95 and half width 0.3; ring of radii 0.45–0.95.
    Distances are exact for circle, square, cross and ring, and a bound (exact on the edges) for the
    triangle.
    """
    if shape == "circle":
        return np.hypot(x, y) - 0.85
    if shape == "square":
        return _box(x, y, 0.72, 0.72)
    if shape == "triangle":
        # max of the three edge half-planes; inradius 0.5 (circumradius 1), apex at y = −1 (up)
        n = _TRI_NORMALS
        d = np.maximum(np.maximum(x * n[0, 0] + y * n[0, 1], x * n[1, 0] + y * n[1, 1]),
                       x * n[2, 0] + y * n[2, 1])
        return d - 0.5
    if shape == "cross":
        return np.minimum(_box(x, y, 0.95, 0.3), _box(x, y, 0.3, 0.95))
    if shape == "ring":
        return np.abs(np.hypot(x, y) - 0.7) - 0.25
    raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")


# ---- parameters ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NavonParams:
    """Every choice behind one figure (pixels unless stated; angles in radians).

    Attributes:
        global_shape, local_shape: names from :data:`SHAPES`.
        center: ``(y, x)`` of the global shape's centre.
        global_radius: radius of the global shape's unit disc.
        global_rotation: rotation of the global shape (and its element lattice).
        element_size: diameter of an element's unit disc.
        spacing: lattice pitch / element size (> 1: gaps between elements).
        lattice_offset: ``(u, v)`` shift of the lattice in its own frame, in pitches ∈ [0, 1).
        local_rotation: rotation of every element relative to the lattice.
        foreground, background: RGB in [0, 1].
        element_jitter: per-element brightness variation (± fraction).
        texture_amp, texture_cells: amplitude and grid of the smooth background texture.
        stripe_amp, stripe_period, stripe_angle: faint background stripes.
        noise: standard deviation of the Gaussian pixel noise (in [0, 1] intensity units).
        seed: seed of the texture / noise / jitter draws.
    """

    global_shape: str
    local_shape: str
    center: tuple[float, float]
    global_radius: float
    global_rotation: float
    element_size: float
    spacing: float
    lattice_offset: tuple[float, float]
    local_rotation: float
    foreground: tuple[float, float, float]
    background: tuple[float, float, float]
    element_jitter: float = 0.1
    texture_amp: float = 0.08
    texture_cells: int = 4
    stripe_amp: float = 0.0
    stripe_period: float = 20.0
    stripe_angle: float = 0.0
    noise: float = 0.02
    seed: int = 0

    @property
    def label(self) -> int:
        return label_of(self.global_shape, self.local_shape)

    @property
    def pitch(self) -> float:
        return self.element_size * self.spacing

    @property
    def elements_across(self) -> float:
        """How many lattice pitches fit across the global shape's diameter."""
        return 2.0 * self.global_radius / self.pitch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> "NavonParams":
        return replace(self, **changes)


def _luma(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _colours(rng: np.random.Generator, min_contrast: float = 0.35) -> tuple[tuple, tuple]:
    """A random ink/paper pair: the ink is darker than the paper in *every* channel, and its luma is at
    least ``min_contrast`` below the paper's.

    Hue and brightness of both are random, but the polarity is fixed (dark ink on lighter paper, per
    channel) on purpose: with random polarity — even per channel, e.g. red ink on cyan paper — "which
    pixels belong to the figure" becomes a relational question, and the demo CrossFormer trained from
    scratch stayed at chance on it (see assets/MODEL_CARD.md).
    """
    for _ in range(100):
        bg = rng.uniform(0.45, 1.0, 3)
        fg = bg * rng.uniform(0.0, 0.45, 3)
        if _luma(bg) - _luma(fg) >= min_contrast:
            break
    else:  # pragma: no cover - practically unreachable
        fg, bg = np.array([0.05, 0.05, 0.05]), np.array([0.95, 0.95, 0.95])
    return tuple(float(v) for v in fg), tuple(float(v) for v in bg)


def sample_params(rng: np.random.Generator, size: tuple[int, int] = (224, 224),
                  global_shape: str | None = None, local_shape: str | None = None,
                  element_size: float | None = None, max_rotation: float | None = None,
                  difficulty: float = 1.0) -> NavonParams:
    """Draw a random figure for an ``(H, W)`` image; shapes and element size may be fixed.

    Rotations (global shape and elements, independently) are uniform in ``±max_rotation`` degrees
    (:data:`MAX_ROTATION` by default; 180 gives any orientation).

    ``difficulty`` ∈ [0, 1] scales the nuisances: 0 draws dark-grey-on-light-grey figures with no texture, stripes, noise or per-element jitter; 1 (default) random colours and the
    full texture / noise ranges. Training ramps it up (a CrossFormer trained from scratch on the full
    range stays at chance for thousands of steps; see assets/MODEL_CARD.md).

    Element size: uniform in :data:`ELEMENT_SIZE_RANGE` pixels (or ``element_size``), shrunk if needed
    (down to :data:`MIN_ELEMENT_SIZE`) so that at least :data:`MIN_ELEMENTS_ACROSS` pitches span the
    global shape. Global diameter: 62–94 % of the shorter side; position: anywhere it fits.
    """
    H, W = int(size[0]), int(size[1])
    rot = math.radians(MAX_ROTATION if max_rotation is None else max_rotation)
    g = global_shape if global_shape is not None else SHAPES[int(rng.integers(NUM_SHAPES))]
    l = local_shape if local_shape is not None else SHAPES[int(rng.integers(NUM_SHAPES))]
    for name in (g, l):
        if name not in SHAPES:
            raise ValueError(f"unknown shape {name!r}; choose one of {', '.join(SHAPES)}")
    short = min(H, W)
    radius = 0.5 * short * rng.uniform(0.62, 0.94)
    spacing = rng.uniform(1.2, 1.75)
    e = float(element_size) if element_size is not None else rng.uniform(*ELEMENT_SIZE_RANGE)
    e_max = 2.0 * radius / (MIN_ELEMENTS_ACROSS * spacing)
    if element_size is None:
        e = max(min(e, e_max), MIN_ELEMENT_SIZE)
    # keep the whole figure (plus half a pitch) inside the image
    margin = radius + 0.5 * e * spacing
    cy = rng.uniform(min(margin, H / 2), max(H - margin, H / 2))
    cx = rng.uniform(min(margin, W / 2), max(W - margin, W / 2))
    d = float(np.clip(difficulty, 0.0, 1.0))
    fg, bg = _colours(rng)
    grey_fg, grey_bg = 0.1, 0.9      # difficulty 0: dark grey ink on light grey paper
    fg = tuple(float(d * c + (1 - d) * grey_fg) for c in fg)
    bg = tuple(float(d * c + (1 - d) * grey_bg) for c in bg)
    stripes = rng.random() < 0.2
    return NavonParams(
        global_shape=g, local_shape=l, center=(float(cy), float(cx)), global_radius=float(radius),
        global_rotation=float(rng.uniform(-rot, rot)), element_size=float(e),
        spacing=float(spacing), lattice_offset=(float(rng.random()), float(rng.random())),
        local_rotation=float(rng.uniform(-rot, rot)), foreground=fg, background=bg,
        element_jitter=d * float(rng.uniform(0.0, 0.1)), texture_amp=d * float(rng.uniform(0.0, 0.06)),
        texture_cells=int(rng.integers(2, 7)),
        stripe_amp=d * float(rng.uniform(0.015, 0.03) if stripes else 0.0),
        stripe_period=float(rng.uniform(6.0, 30.0)), stripe_angle=float(rng.uniform(0, math.pi)),
        noise=d * float(rng.uniform(0.0, 0.03)), seed=int(rng.integers(2 ** 31)))


# ---- rendering -------------------------------------------------------------------------------------
def _smooth_texture(rng: np.random.Generator, H: int, W: int, cells: int) -> np.ndarray:
    """Bilinearly upsampled random grid: smooth noise in [−1, 1], ``(H, W)``."""
    grid = rng.uniform(-1.0, 1.0, (cells + 1, cells + 1))
    ys = np.linspace(0.0, cells, H)
    xs = np.linspace(0.0, cells, W)
    y0 = np.minimum(ys.astype(int), cells - 1)
    x0 = np.minimum(xs.astype(int), cells - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fy) * (1 - fx) + b * (1 - fy) * fx + c * fy * (1 - fx) + d * fy * fx)


def _cell_hash(i: np.ndarray, j: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) per integer lattice cell ``(i, j)``."""
    h = (i.astype(np.int64) * 73856093) ^ (j.astype(np.int64) * 19349663) ^ (seed * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFF).astype(np.float64) / 65536.0


def render(params: NavonParams, size: tuple[int, int] = (224, 224), layers: bool = False
           ) -> np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]:
    """Draw ``params`` on an ``(H, W)`` canvas → ``uint8 (H, W, 3)``.

    With ``layers=True`` also returns a dict of ``(H, W)`` float arrays:
    ``ink`` — element coverage in [0, 1] (where the local shapes are drawn),
    ``region`` — 1 on every lattice cell that holds an element (the global shape as the elements
    tile it, gaps included), ``global_sdf`` — signed distance to the global shape in pixels.
    """
    p = params
    H, W = int(size[0]), int(size[1])
    rng = np.random.default_rng(p.seed)
    yy, xx = np.meshgrid(np.arange(H, dtype=np.float64) + 0.5, np.arange(W, dtype=np.float64) + 0.5,
                         indexing="ij")                                           # (H, W) each
    # frame of the global shape (and of the lattice), in pixels
    cg, sg = math.cos(p.global_rotation), math.sin(p.global_rotation)
    dy, dx = yy - p.center[0], xx - p.center[1]
    u = cg * dx + sg * dy                                                        # (H, W)
    v = -sg * dx + cg * dy
    pitch = p.pitch
    iu = np.floor(u / pitch - p.lattice_offset[0] + 0.5)                         # lattice cell index
    iv = np.floor(v / pitch - p.lattice_offset[1] + 0.5)
    cu = (iu + p.lattice_offset[0]) * pitch                                      # cell centre (frame)
    cv = (iv + p.lattice_offset[1]) * pitch
    R = p.global_radius
    region = shape_sdf(p.global_shape, cu / R, cv / R) < 0.0                       # (H, W) bool
    # element coordinates, rotated, in element unit-disc units
    r_e = 0.5 * p.element_size
    cl, sl = math.cos(p.local_rotation), math.sin(p.local_rotation)
    lu, lv = u - cu, v - cv
    eu = (cl * lu + sl * lv) / r_e
    ev = (-sl * lu + cl * lv) / r_e
    d_px = shape_sdf(p.local_shape, eu, ev) * r_e                                # signed distance, px
    ink = np.clip(0.5 - d_px, 0.0, 1.0) * region                                 # antialiased coverage

    # colours: background + smooth texture + faint stripes; per-element brightness jitter
    bg = np.asarray(p.background, dtype=np.float64)
    fg = np.asarray(p.foreground, dtype=np.float64)
    tex = p.texture_amp * _smooth_texture(rng, H, W, max(int(p.texture_cells), 1))
    if p.stripe_amp > 0:
        ca, sa = math.cos(p.stripe_angle), math.sin(p.stripe_angle)
        tex = tex + p.stripe_amp * np.sin(2 * math.pi * (ca * xx + sa * yy) / p.stripe_period)
    jitter = 1.0 + p.element_jitter * (2.0 * _cell_hash(iu, iv, p.seed) - 1.0)     # (H, W)
    img = bg[None, None, :] + tex[..., None]
    fg_px = np.clip(fg[None, None, :] * jitter[..., None], 0.0, 1.0)
    img = img * (1.0 - ink[..., None]) + fg_px * ink[..., None]
    if p.noise > 0:
        img = img + rng.normal(0.0, p.noise, img.shape)
    out = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if not layers:
        return out
    gsdf = shape_sdf(p.global_shape, u / R, v / R) * R
    return out, {"ink": ink, "region": region.astype(np.float64), "global_sdf": gsdf}


def sample_navon(rng: np.random.Generator, size: tuple[int, int] = (224, 224)) -> tuple[np.ndarray, int]:
    """A random Navon figure: ``(uint8 (H, W, 3), label)`` with ``label = global·5 + local``."""
    params = sample_params(rng, size)
    return render(params, size), params.label


def navon_batch(seed: int, n: int, size: tuple[int, int] = (224, 224), max_rotation: float | None = None,
                difficulty: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` figures from one seed: ``uint8 (n, H, W, 3)`` and ``int64 (n,)`` labels.

    Classes are balanced within the batch (a shuffled cycle over the 25 classes) so small evaluation
    sets cover every class.
    """
    rng = np.random.default_rng(seed)
    labels = np.concatenate([rng.permutation(NUM_CLASSES) for _ in range(-(-n // NUM_CLASSES))])[:n]
    images = np.empty((n, int(size[0]), int(size[1]), 3), dtype=np.uint8)
    for k, lab in enumerate(labels):
        g, l = split_label(int(lab))
        images[k] = render(sample_params(rng, size, SHAPES[g], SHAPES[l], max_rotation=max_rotation,
                                        difficulty=difficulty), size)
    return images, labels.astype(np.int64)


def render_navon(global_shape: str, local_shape: str, size: tuple[int, int] = (224, 224),
                 element_size: float | None = None, seed: int = 0, **overrides: Any) -> np.ndarray:
    """One figure with chosen shapes → ``uint8 (H, W, 3)`` (for generator widgets).

    Everything else (position, rotation, colours, texture, noise) is drawn from ``seed``; any
    :class:`NavonParams` field can be fixed through ``overrides`` (``noise=0.0``, ``spacing=1.5``,
    ``global_rotation=0.0`` …). ``element_size`` (pixels) is used as given; ``None`` draws it like
    :func:`sample_params`.
    """
    params = sample_params(np.random.default_rng(seed), size, global_shape, local_shape, element_size)
    if overrides:
        params = params.replace(**overrides)
    return render(params, size)
