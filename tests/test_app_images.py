"""Image decoding and preprocessing of the app (pages/common/images.py): every awkward input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import app_samples as S
from pages.common.images import (MAX_ASPECT, ImageError, Preprocessing, decode_image, draw_box, normalise,
                                 preprocess, token_box)


@pytest.mark.parametrize("data, phrase", [
    (b"", "empty"),
    (S.not_an_image(), "not an image"),
    (S.truncated_jpeg(), "truncated or corrupt"),
    (S.png_header_only(7000, 7000), "decompression bomb"),      # above our cap, below PIL's warning
    (S.png_header_only(20000, 20000), "decompression bomb"),    # above PIL's own error limit
])
def test_bad_files_raise_a_readable_error(data, phrase):
    with pytest.raises(ImageError, match=phrase):
        decode_image(data, "upload.png")


def test_plain_png_roundtrip():
    arr = S.gradient(30, 40)
    dec = decode_image(S.png(arr), "x.png")
    assert dec.rgb.shape == (30, 40, 3) and dec.rgb.dtype == np.uint8
    np.testing.assert_array_equal(dec.rgb, arr)
    assert dec.notes == () and dec.format == "PNG"


def test_rgba_is_flattened_on_white():
    dec = decode_image(S.rgba(), "a.png")
    assert dec.mode == "RGBA"
    np.testing.assert_array_equal(dec.rgb[0, 0], [255, 255, 255])     # transparent → white
    np.testing.assert_array_equal(dec.rgb[32, 32], [200, 0, 0])       # opaque stays
    assert any("transparent" in n for n in dec.notes)


@pytest.mark.parametrize("maker, mode", [(S.palette_with_transparency, "P"), (S.la, "LA"), (S.cmyk_jpeg, "CMYK")])
def test_other_modes_become_rgb(maker, mode):
    dec = decode_image(maker(), "x")
    assert dec.mode == mode
    assert dec.rgb.ndim == 3 and dec.rgb.shape[2] == 3 and dec.rgb.dtype == np.uint8


def test_16_bit_is_scaled_not_clipped():
    dec = decode_image(S.gray16(65535), "g16.png")
    assert dec.mode.startswith("I;16") or dec.mode == "I"
    assert dec.rgb[20, 0, 0] == 255 and dec.rgb[0, 0, 0] == 0
    mid = decode_image(S.gray16(32896), "g16.png")
    assert abs(int(mid.rgb[20, 0, 0]) - 128) <= 1                  # 32896/257 = 128


def test_exif_orientation_is_applied():
    dec = decode_image(S.exif_rotated(6, h=40, w=80), "photo.jpg")
    assert dec.rgb.shape[:2] == (80, 40)                             # rotated to portrait
    assert any("EXIF orientation 6" in n for n in dec.notes)
    # the red top-left corner of the stored image ends at the top-right after a 90° clockwise turn
    assert dec.rgb[2, -2, 0] > 200 and dec.rgb[2, -2, 1] < 60


def test_animated_gif_uses_first_frame():
    dec = decode_image(S.animated_gif(3), "anim.gif")
    assert dec.rgb.shape == (32, 48, 3)
    assert int(dec.rgb.max()) == 0                                   # frame 0 is black
    assert any("3 frames" in n for n in dec.notes)


@pytest.mark.parametrize("mode", ["official", "aspect"])
def test_tiny_and_extreme_images_are_usable(mode):
    for data, name in ((S.tiny(), "1x1.png"), (S.very_wide(), "wide.png")):
        dec = decode_image(data, name)
        prep = preprocess(dec.rgb, Preprocessing(mode, 224))
        assert min(prep.hw) >= 32
        assert prep.notes, f"{name}: the user must be told"
        if mode == "official":
            assert prep.hw == (224, 224)
        else:
            assert max(prep.hw) <= MAX_ASPECT * min(prep.hw) + 1


def test_official_transform_is_resize_then_centre_crop():
    rng = np.random.default_rng(0)
    img = Image.fromarray((rng.random((120, 90, 3)) * 255).astype(np.uint8))
    got = preprocess(np.asarray(img), Preprocessing("official", 224))
    # torchvision semantics: shorter side 256 (long side truncated), centre crop with rounded offsets
    r = img.resize((256, int(256 * 120 / 90)), Image.Resampling.BICUBIC)
    top = int(round((r.height - 224) / 2.0))
    left = int(round((r.width - 224) / 2.0))
    np.testing.assert_array_equal(got.pixels, np.asarray(r)[top:top + 224, left:left + 224])
    assert got.hw == (224, 224) and "centre crop 224×224" in got.steps[1]


def test_aspect_mode_keeps_the_aspect_ratio():
    got = preprocess(S.gradient(300, 200), Preprocessing("aspect", 96))
    assert got.hw == (144, 96)


def test_normalise_matches_to_tensor_and_normalize():
    px = np.array([[[0, 128, 255]]], dtype=np.uint8)
    x = normalise(px, (0.5, 0.5, 0.5), (0.25, 0.5, 1.0))
    assert x.shape == (3, 1, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, 0], [(0 - 0.5) / 0.25, (128 / 255 - 0.5) / 0.5, (1 - 0.5) / 1.0], atol=1e-6)


def test_query_box_is_drawn_where_the_token_is():
    px = np.zeros((64, 64, 3), np.uint8)
    box = token_box((2, 3), 8, (64, 64))
    assert box == (24, 16, 32, 24)
    out = draw_box(px, box, scale=2)
    assert out.shape == (128, 128, 3)
    assert out[2 * 16 + 3, 2 * 24, 0] > 200           # left edge of the outline is coloured
    assert out[0, 0].sum() == 0 and out[120, 120].sum() == 0


def test_normal_png_decodes_fast_path_notes_empty():
    buf = io.BytesIO()
    Image.new("L", (40, 40), 77).save(buf, "PNG")
    dec = decode_image(buf.getvalue(), "grey.png")
    assert dec.rgb.shape == (40, 40, 3) and int(dec.rgb[0, 0, 1]) == 77


def test_the_app_and_the_statistics_cli_decode_with_one_loader(tmp_path):
    """The CLI's folder walk and the app's uploads share crossformer.images: a rotated photo read from disk
    for the CLI is the app's upload, pixel for pixel."""
    import crossformer.images as shared

    assert (decode_image, preprocess, normalise, ImageError) == (shared.decode_image, shared.preprocess,
                                                                 shared.normalise, shared.ImageError)
    data = S.exif_rotated(6, h=40, w=80)
    (tmp_path / "photo.jpg").write_bytes(data)
    prep = Preprocessing("official", 64)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    app = normalise(preprocess(decode_image(data, "photo.jpg").rgb, prep).pixels, mean, std)
    np.testing.assert_array_equal(shared.load_model_input(tmp_path / "photo.jpg", prep, mean, std), app)


def test_one_normalisation_for_an_image_and_a_batch():
    """crossformer.images.normalise is the project's one mean/std normalisation: a batch ``(B, H, W, 3)`` gives
    each image's own result (the training, benchmark and statistics code normalise batches with it), and
    anything but RGB pixels is refused with the project's error."""
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    batch = np.random.default_rng(0).integers(0, 256, (3, 9, 11, 3), dtype=np.uint8)
    out = normalise(batch, mean, std)
    assert out.shape == (3, 3, 9, 11) and out.dtype == np.float32 and out.flags.c_contiguous
    for i in range(3):
        np.testing.assert_array_equal(out[i], normalise(batch[i], mean, std))
    np.testing.assert_allclose(out[1, 2, 4, 5], (batch[1, 4, 5, 2] / 255 - 0.3) / 0.3, rtol=1e-6)
    with pytest.raises(ImageError, match="H, W, 3"):
        normalise(batch[..., :2], mean, std)

