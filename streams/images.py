"""Fetching item image bytes from what a catalog event gives: data URI, base64, path or URL."""

from __future__ import annotations

import base64
import binascii
import urllib.request
from pathlib import Path

from streams.settings import Settings


class ImageUnavailable(ValueError):
    """The image reference could not be turned into bytes (the reason says why)."""


def load_image_bytes(ref: str, settings: Settings) -> bytes:
    """Bytes of the image ``ref`` points at, within the configured size limit."""
    limit = settings.image_max_bytes
    ref = ref.strip()
    if ref.startswith("data:"):
        header, _, payload = ref.partition(",")
        if ";base64" not in header:
            raise ImageUnavailable("data: URI images must be base64-encoded")
        return _b64(payload, limit)
    if ref.startswith(("http://", "https://")):
        if not settings.fetch_image_urls:
            raise ImageUnavailable("image URLs are disabled (STREAMREC_FETCH_IMAGE_URLS=false)")
        try:
            with urllib.request.urlopen(ref, timeout=settings.image_fetch_timeout_s) as resp:  # noqa: S310
                data = resp.read(limit + 1)
        except OSError as exc:
            raise ImageUnavailable(f"could not download {ref[:200]}: {exc}") from None
        if len(data) > limit:
            raise ImageUnavailable(f"image at {ref[:200]} is larger than {limit} bytes")
        return data
    if ref.startswith(("/", "./", "file://")):
        return _read_path(ref.removeprefix("file://"), settings)
    return _b64(ref, limit)


def _b64(payload: str, limit: int) -> bytes:
    if len(payload) > limit * 4 // 3 + 4:
        raise ImageUnavailable(f"image is larger than {limit} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageUnavailable("image is neither a URL, a path under the image root, nor valid base64") from None


def _read_path(path: str, settings: Settings) -> bytes:
    if settings.image_root is None:
        raise ImageUnavailable("image paths are disabled; set STREAMREC_IMAGE_ROOT to the folder holding them")
    root = settings.image_root.resolve()
    p = Path(path).resolve()
    if not p.is_relative_to(root):
        raise ImageUnavailable(f"image path {path} is outside STREAMREC_IMAGE_ROOT ({root})")
    if not p.is_file():
        raise ImageUnavailable(f"image file {path} does not exist")
    if p.stat().st_size > settings.image_max_bytes:
        raise ImageUnavailable(f"image file {path} is larger than {settings.image_max_bytes} bytes")
    return p.read_bytes()
