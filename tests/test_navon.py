"""The Navon figure generator (crossformer/navon.py): determinism, sizes, labels, geometry."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from crossformer import navon
from crossformer.navon import CLASS_NAMES, SHAPES


def test_class_names_and_labels():
    assert len(SHAPES) == 5 and len(set(SHAPES)) == 5
    assert len(CLASS_NAMES) == 25 and len(set(CLASS_NAMES)) == 25
    assert CLASS_NAMES[navon.label_of("triangle", "square")] == "triangle of squares"
    assert CLASS_NAMES[navon.label_of("cross", "cross")] == "cross of crosses"
    assert CLASS_NAMES[navon.label_of("ring", "circle")] == "ring of circles"
    for label in range(25):
        g, l = navon.split_label(label)
        assert navon.label_of(SHAPES[g], SHAPES[l]) == label
        assert CLASS_NAMES[label].startswith(SHAPES[g] + " of " + SHAPES[l])
    g, l = navon.split_label(np.arange(25))
    np.testing.assert_array_equal(g * 5 + l, np.arange(25))


def test_same_seed_same_image_other_seed_other_image():
    a = navon.render_navon("triangle", "square", (96, 128), seed=3)
    b = navon.render_navon("triangle", "square", (96, 128), seed=3)
    c = navon.render_navon("triangle", "square", (96, 128), seed=4)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 5
    x1, y1 = navon.sample_navon(np.random.default_rng(7), (80, 80))
    x2, y2 = navon.sample_navon(np.random.default_rng(7), (80, 80))
    np.testing.assert_array_equal(x1, x2)
    assert y1 == y2


@pytest.mark.parametrize("size", [(224, 224), (64, 96), (200, 120), (33, 300)])
def test_any_size_uint8_rgb(size):
    img, label = navon.sample_navon(np.random.default_rng(0), size)
    assert img.shape == (*size, 3) and img.dtype == np.uint8
    assert isinstance(label, int) and 0 <= label < 25
    assert img.std() > 3          # not a blank canvas


def test_batch_labels_balanced_and_in_range():
    images, labels = navon.navon_batch(11, 60, (64, 64))
    assert images.shape == (60, 64, 64, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < 25
    counts = np.bincount(labels, minlength=25)
    assert counts.min() >= 2 and counts.max() <= 3        # a shuffled cycle over the 25 classes
    again, labels2 = navon.navon_batch(11, 60, (64, 64))
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, labels2)


def test_shape_sdf_tells_shapes_apart():
    sdf = navon.shape_sdf
    zero, far = np.zeros(1), np.full(1, 2.0)
    for s in SHAPES:
        assert sdf(s, far, zero)[0] > 0 and sdf(s, zero, far)[0] > 0     # everything fits the unit disc
    for s in ("circle", "square", "triangle", "cross"):
        assert sdf(s, zero, zero)[0] < 0
    assert sdf("ring", zero, zero)[0] > 0                                # the ring has a hole
    corner = (np.array([0.68]), np.array([0.68]))
    assert sdf("square", *corner)[0] < 0 and sdf("circle", *corner)[0] > 0 and sdf("cross", *corner)[0] > 0
    assert sdf("triangle", np.zeros(1), np.array([-0.9]))[0] < 0         # apex up (y points down)
    assert sdf("triangle", np.zeros(1), np.array([0.9]))[0] > 0
    assert sdf("cross", np.array([0.9]), zero)[0] < 0 and sdf("circle", np.array([0.9]), zero)[0] > 0
    with pytest.raises(ValueError):
        sdf("hexagon", zero, zero)


def _components(mask: np.ndarray) -> list[np.ndarray]:
    from skimage.measure import label, regionprops
    return [np.array(r.bbox) for r in regionprops(label(mask, connectivity=2))]


@pytest.mark.parametrize("seed", range(6))
def test_local_elements_are_small_and_separate(seed):
    """Elements are whole, separate blobs much smaller than the global figure they form."""
    rng = np.random.default_rng(100 + seed)
    p = navon.sample_params(rng, (224, 224), local_shape=SHAPES[seed % 5] if seed % 5 != 3 else "circle")
    assert p.elements_across >= navon.MIN_ELEMENTS_ACROSS - 1e-9
    assert p.element_size <= navon.ELEMENT_SIZE_RANGE[1] and p.spacing > 1.0
    img, layers = navon.render(p.replace(noise=0.0), (224, 224), layers=True)
    blobs = _components(layers["ink"] > 0.5)
    assert len(blobs) >= 15
    extent = np.array([[b[2] - b[0], b[3] - b[1]] for b in blobs])
    assert extent.max() <= p.element_size + 2                       # each blob is one element
    ys, xs = np.nonzero(layers["ink"] > 0.5)
    figure = max(ys.max() - ys.min(), xs.max() - xs.min())
    assert figure >= 4 * extent.max()
    # the global shape is not a solid blob: the lattice gaps show background inside it
    inside = layers["region"] > 0
    assert layers["ink"][inside].mean() < 0.6


def test_render_layers_and_colours():
    p = navon.sample_params(np.random.default_rng(5), (128, 128), "square", "circle", element_size=9.0)
    p = p.replace(noise=0.0, texture_amp=0.0, stripe_amp=0.0, element_jitter=0.0,
                  foreground=(1.0, 0.0, 0.0), background=(0.0, 0.0, 1.0))
    img, layers = navon.render(p, (128, 128), layers=True)
    ink = layers["ink"]
    assert ink.shape == (128, 128) and 0 <= ink.min() and ink.max() <= 1
    np.testing.assert_array_equal(img[ink == 0], np.tile([0, 0, 255], ((ink == 0).sum(), 1)))
    np.testing.assert_array_equal(img[ink == 1], np.tile([255, 0, 0], ((ink == 1).sum(), 1)))
    assert (ink[layers["region"] == 0] == 0).all()                  # no ink outside the lattice cells used
    assert (layers["global_sdf"][layers["region"] > 0] < p.pitch).all()


def test_global_and_local_shape_change_the_image():
    """Same seed, different shapes: the differences sit where the shapes differ."""
    base = dict(size=(128, 128), element_size=8.0, seed=2, noise=0.0)
    a = navon.render_navon("circle", "square", **base)
    b = navon.render_navon("ring", "square", **base)       # global change: the centre empties
    c = navon.render_navon("circle", "cross", **base)      # local change: every element changes
    p = navon.sample_params(np.random.default_rng(2), (128, 128), "circle", "square", 8.0)
    cy, cx = (int(v) for v in p.center)
    r = int(0.3 * p.global_radius)
    centre = (slice(cy - r, cy + r), slice(cx - r, cx + r))
    assert np.abs(a[centre].astype(int) - b[centre]).mean() > 10
    assert np.abs(a.astype(int) - c).mean() > 2


def test_overrides_and_errors():
    img = navon.render_navon("cross", "ring", (100, 100), seed=1, noise=0.0, global_rotation=0.0)
    assert img.shape == (100, 100, 3)
    with pytest.raises(ValueError):
        navon.render_navon("star", "ring")
    with pytest.raises(TypeError):
        navon.render_navon("cross", "ring", colour=1)


def test_imports_without_torch():
    code = ("import sys; import crossformer.navon as n; n.render_navon('circle', 'square', (40, 40)); "
            "assert 'torch' not in sys.modules and 'PIL' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))


def test_colours_rotation_and_difficulty():
    rng = np.random.default_rng(9)
    luma = np.array([0.299, 0.587, 0.114])
    for _ in range(40):
        p = navon.sample_params(rng, (128, 128))
        assert np.dot(p.background, luma) - np.dot(p.foreground, luma) >= 0.3 - 1e-9   # dark ink on paper
        assert abs(p.global_rotation) <= np.radians(navon.MAX_ROTATION) + 1e-12
        assert abs(p.local_rotation) <= np.radians(navon.MAX_ROTATION) + 1e-12
    p = navon.sample_params(rng, (128, 128), max_rotation=180)
    assert abs(p.global_rotation) <= np.pi
    clean = navon.sample_params(np.random.default_rng(1), (128, 128), difficulty=0.0)
    assert clean.foreground == (0.1, 0.1, 0.1) and clean.background == (0.9, 0.9, 0.9)
    assert clean.noise == clean.texture_amp == clean.stripe_amp == clean.element_jitter == 0.0
    full = navon.sample_params(np.random.default_rng(1), (128, 128))
    assert (full.global_shape, full.local_shape, full.center) == (clean.global_shape, clean.local_shape,
                                                                  clean.center)   # same figure, other look
