"""Reading and writing images as uint8 arrays, upright (EXIF orientation applied), with errors that
name the file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.errors import PipelineError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
GREYSCALE_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B")
EXIF_ORIENTATION = 0x0112


class UnreadableImage(PipelineError):
    """A file that is not a decodable image (truncated, corrupt, or another format)."""


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder``, recursively, sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PipelineError(f"image folder '{folder}' does not exist; check the path in params.yaml")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class Decoded:
    """An image as read: ``rgb`` (``H x W x 3`` uint8, greyscale replicated), its ``alpha`` plane
    (``H x W`` uint8, None when the file has no transparency) and whether the file was ``greyscale``."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    greyscale: bool


def decode_image(path: Path) -> Decoded:
    """Decode ``path`` upright: the EXIF orientation a camera or phone records is applied (a portrait
    photo stays portrait); 16-bit samples are rounded to 8 bits."""
    with _errors_named(path), Image.open(path) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        greyscale = img.mode in GREYSCALE_MODES
        alpha = np.asarray(img.convert("RGBA"), dtype=np.uint8)[..., 3].copy() if _has_alpha(img) else None
        if img.mode in ("I;16", "I;16B", "I"):
            array = np.asarray(img, dtype=np.float64)
            img = Image.fromarray(np.clip(array / 257.0 + 0.5, 0, 255).astype(np.uint8))
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    return Decoded(rgb, alpha, greyscale)


def read_image(path: Path) -> np.ndarray:
    """``path`` as an upright ``H x W x 3`` uint8 RGB array (greyscale is replicated, alpha dropped)."""
    return decode_image(path).rgb


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info


def image_size(path: Path) -> tuple[int, int]:
    """``(height, width)`` of ``path`` upright (EXIF orientation applied) from its header, without
    decoding the pixels."""
    with _errors_named(path), Image.open(path) as img:
        width, height = img.size
        turned = img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)  # 90 or 270 degrees
    return (width, height) if turned else (height, width)


@contextlib.contextmanager
def _errors_named(path: Path) -> Iterator[None]:
    """Turn Pillow's errors while reading ``path`` into one ``UnreadableImage`` sentence."""
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"'{path}' is refused as a possible decompression bomb ({exc}); split it into "
                              "smaller images") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImage(f"'{path}' is not a readable image ({exc}); replace or remove the file") from None


def write_png(path: Path, image: np.ndarray) -> None:
    """Write ``H x W x 3`` (RGB), ``H x W x 4`` (RGBA) or ``H x W`` (greyscale) uint8 as lossless PNG,
    atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.dtype != np.uint8:
        raise TypeError(f"write_png expects uint8, got {image.dtype}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png.tmp")
    os.close(fd)
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of ``scale`` (BasicSR convention)."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]
