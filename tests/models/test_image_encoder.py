"""Image decoding, preprocessing and the ONNX image encoder."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from export.encoders import IMAGE_TOLERANCE
from models.image_encoder import IMAGE_DIM, OnnxImageEncoder
from models.image_preprocess import IMAGE_MEAN, IMAGE_SIZE, IMAGE_STD, decode_image, preprocess
from models.image_tower import ImageTower
from models.types import ImageEncoder


def scene(kind: str, size: tuple[int, int] = (320, 240)) -> NDArray[np.uint8]:
    """Clearly different synthetic pictures on a light grey background."""
    w, h = size
    img = Image.new("RGB", size, (235, 235, 235))
    draw = ImageDraw.Draw(img)
    if kind == "red_circle":
        draw.ellipse((w // 4, h // 6, 3 * w // 4, 5 * h // 6), fill=(210, 30, 30))
    elif kind == "blue_stripes":
        for x in range(0, w, 20):
            draw.rectangle((x, 0, x + 9, h), fill=(20, 60, 200))
    elif kind == "checker":
        for x in range(0, w, 40):
            for y in range(0, h, 40):
                if (x // 40 + y // 40) % 2:
                    draw.rectangle((x, y, x + 39, y + 39), fill=(0, 0, 0))
    else:
        raise ValueError(kind)
    return np.asarray(img, dtype=np.uint8)


def encoded(image: NDArray[np.uint8], fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **options)
    return buf.getvalue()


def cosine(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- decode_image --------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"garbage bytes, not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_decode_image_rejects_non_images(data: bytes) -> None:
    with pytest.raises(ValueError, match="image"):
        decode_image(data)


def test_decode_image_rejects_truncated_file() -> None:
    data = encoded(scene("checker"), "PNG")
    with pytest.raises(ValueError):
        decode_image(data[: len(data) // 2])


def test_decode_image_rejects_too_many_pixels() -> None:
    data = encoded(scene("checker"), "PNG")  # 320 x 240 = 76 800 pixels
    with pytest.raises(ValueError, match="too large"):
        decode_image(data, max_pixels=50_000)
    assert decode_image(data, max_pixels=76_800).shape == (240, 320, 3)


def test_decode_image_rejects_non_bytes() -> None:
    with pytest.raises(TypeError):
        decode_image("not bytes")  # type: ignore[arg-type]


def test_decode_image_roundtrips_png_exactly() -> None:
    image = scene("red_circle")
    out = decode_image(encoded(image, "PNG"))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, image)


def test_decode_image_converts_grey_and_transparency_to_rgb() -> None:
    grey = decode_image(encoded(np.full((8, 8), 77, np.uint8), "PNG"))
    assert grey.shape == (8, 8, 3) and np.all(grey == 77)
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black
    rgba[:4, :, :] = (10, 200, 10, 255)  # opaque green top half
    out = decode_image(encoded(rgba, "PNG"))
    assert out.shape == (8, 8, 3)
    assert np.all(out[4:] == 255)  # transparent -> white, not black
    assert np.all(out[:4] == (10, 200, 10))


def test_decode_image_applies_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buf = io.BytesIO()
    Image.fromarray(scene("checker", (64, 32))).save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue()).shape == (64, 32, 3)


# --- preprocess ----------------------------------------------------------------------


def test_preprocess_shape_dtype_and_empty_batch() -> None:
    out = preprocess([scene("checker"), scene("red_circle", (100, 500))])
    assert out.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE) and out.dtype == np.float32
    assert preprocess([]).shape == (0, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_preprocess_normalises_and_center_crops() -> None:
    # a 3:1 strip: red | green | blue thirds; the center crop must keep only green
    strip = np.zeros((224, 672, 3), np.uint8)
    strip[:, :224] = (255, 0, 0)
    strip[:, 224:448] = (0, 255, 0)
    strip[:, 448:] = (0, 0, 255)
    out = preprocess([strip])[0]
    low, high = (0 - IMAGE_MEAN) / IMAGE_STD, (255 - IMAGE_MEAN) / IMAGE_STD
    np.testing.assert_allclose(out[0], low, atol=1e-6)
    np.testing.assert_allclose(out[1], high, atol=1e-6)
    np.testing.assert_allclose(out[2], low, atol=1e-6)


def test_preprocess_rejects_wrong_input() -> None:
    with pytest.raises(ValueError):
        preprocess([np.zeros((10, 10, 3), np.float32)])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        preprocess([np.zeros((10, 10), np.uint8)])


@pytest.mark.parametrize(("height", "width", "value"),
                         [(1, 1, 0), (1, 600, 255), (600, 1, 17), (223, 225, 128), (224, 224, 127),
                          (599, 301, 200)])
def test_preprocess_any_size_gives_square_input_in_range(height: int, width: int, value: int) -> None:
    out = preprocess([np.full((height, width, 3), value, np.uint8)])
    assert out.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    np.testing.assert_allclose(out, (value - IMAGE_MEAN) / IMAGE_STD, atol=1e-5)


def test_serving_modules_do_not_import_torch() -> None:
    code = ("import sys, models.image_encoder, models.image_preprocess, models.text_encoder, "
            "models.onnx_session; sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --- encoder -------------------------------------------------------------------------


def test_empty_batch_has_shape_0_by_1280(image_encoder: OnnxImageEncoder) -> None:
    out = image_encoder.encode([])
    assert out.shape == (0, IMAGE_DIM) and out.dtype == np.float32


def test_rows_are_unit_norm(image_encoder: OnnxImageEncoder) -> None:
    encoder: ImageEncoder = image_encoder
    out = encoder.encode([scene("checker"), scene("blue_stripes", (200, 400))])
    assert encoder.dim == IMAGE_DIM
    assert out.shape == (2, IMAGE_DIM) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_different_images_differ_and_reencoded_images_match(image_encoder: OnnxImageEncoder) -> None:
    circle = scene("red_circle")
    as_png = decode_image(encoded(circle, "PNG"))
    as_jpeg = decode_image(encoded(circle, "JPEG", quality=90))
    circle_e, stripes_e, checker_e, png_e, jpeg_e = image_encoder.encode(
        [circle, scene("blue_stripes"), scene("checker"), as_png, as_jpeg]
    )
    assert cosine(circle_e, stripes_e) < 0.6
    assert cosine(circle_e, checker_e) < 0.6
    assert cosine(stripes_e, checker_e) < 0.6
    assert cosine(circle_e, png_e) > 0.9999
    assert cosine(circle_e, jpeg_e) > 0.9


def test_chunked_batches_match_single_images(image_encoder: OnnxImageEncoder) -> None:
    images = [scene("red_circle"), scene("blue_stripes"), scene("checker")]
    chunked = OnnxImageEncoder(image_encoder.session, batch_size=2).encode(images)
    singles = np.concatenate([image_encoder.encode([img]) for img in images])
    np.testing.assert_allclose(chunked, singles, atol=1e-5)


def test_onnx_matches_pytorch_tower(image_encoder: OnnxImageEncoder, image_tower: ImageTower) -> None:
    pixels = preprocess([scene("red_circle"), scene("checker", (500, 120))])
    with torch.no_grad():
        expected = image_tower(torch.from_numpy(pixels)).numpy()
    got = image_encoder.encode_pixels(pixels)
    assert float(np.max(np.abs(got - expected))) <= IMAGE_TOLERANCE


def test_encode_pixels_rejects_wrong_shape(image_encoder: OnnxImageEncoder) -> None:
    with pytest.raises(ValueError):
        image_encoder.encode_pixels(np.zeros((1, 3, 100, 100), np.float32))
