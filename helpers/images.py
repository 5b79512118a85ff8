"""Opening pictures that anyone may hand us: an explicit list of formats, a pixel limit
checked before decoding, EXIF rotation, and RGB as people see it."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from helpers.files import open_regular

# The formats we open, and only these: Pillow would otherwise also try formats that
# start external programs (EPS runs Ghostscript). "JPEG" includes phones' MPO files.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")

# The most pixels decoded for one picture (a JPEG first shrinks while decoding): a small
# file can declare a huge picture, and 25 Mpixels of RGB is 75 MB.
MAX_PIXELS = 25_000_000
# Pillow's WebP decoder holds about 15 bytes a pixel while it decodes (the decoded
# RGBA frame and a copy of it), so WebP gets a lower limit: 16 Mpixels, 4000x4000.
MAX_PIXELS_BY_FORMAT = {"WEBP": 16_000_000}


# EXIF orientation -> the transpose that shows the picture upright.
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def open_image(source, size: int | None = None) -> Image.Image:
    """Decode a picture (a path or a binary file) into RGB as people see it.

    Raises ValueError for a bad or unsupported file. More than MAX_PIXELS left to
    decode is refused before decoding. With `size`, the picture is shrunk as soon as
    it is decoded, to at most twice `size` a side (a JPEG already while decoding, at
    1/2, 1/4 or 1/8 scale), so rotating it and laying transparency on white work on
    the small copy: memory stays near that of the one decoded picture, whatever its
    mode. EXIF rotation is applied, grayscale (16-bit scaled, not clipped) and CMYK
    become RGB. A path is opened only if it is a regular file, not empty.
    """
    if isinstance(source, str | os.PathLike):  # only a regular file is opened
        with open_regular(source, empty=False) as file:
            return open_image(file, size)
    try:
        with Image.open(source, formats=IMAGE_FORMATS) as image:
            if size:
                image.draft("RGB", (size, size))  # JPEG only
            limit = MAX_PIXELS_BY_FORMAT.get(image.format, MAX_PIXELS)
            if image.width * image.height > limit:
                raise ValueError(
                    f"{image.width}x{image.height} pixels is over the {limit:,} "
                    f"limit for {image.format} (possible decompression bomb)"
                )
            orientation = image.getexif().get(0x0112)
            transparent = (
                image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            )
            small = _shrunk(image, size)  # a new image: the decoded one is freed below
        if orientation in UPRIGHT:
            small = small.transpose(UPRIGHT[orientation])
        if transparent:
            rgba = small.convert("RGBA")
            small = Image.new("RGBA", rgba.size, "white")
            small.alpha_composite(rgba)
        return small.convert("RGB")
    except UnidentifiedImageError:
        raise ValueError(
            f"not a supported image (accepted: {', '.join(IMAGE_FORMATS)})"
        ) from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"{type(error).__name__}: {error}") from None


def _shrunk(image: Image.Image, size: int | None) -> Image.Image:
    """A copy of the decoded picture at most 2 * `size` a side (each side on its own:
    the encoder squeezes the picture into a square anyway)."""
    image.load()
    if image.mode == "I" or image.mode.startswith("I;16"):
        # 16-bit grey (PNG), 0..65535: scaled to 8 bits, where convert() would clip
        image = image.point(lambda value: value / 257).convert("L")
    elif image.mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    if not size:
        return image.copy()
    target = (min(image.width, 2 * size), min(image.height, 2 * size))
    if target == image.size:
        return image.copy()
    if image.mode in ("P", "PA", "1"):  # palette pictures resize by nearest pixel
        return image.resize(target, Image.NEAREST)
    return image.resize(target, Image.BICUBIC, reducing_gap=2.0)


def encoder_input(image: Image.Image, size: int) -> np.ndarray:
    """An opened picture squeezed to (size, size, 3) uint8 RGB for the encoder."""
    image = image.resize((size, size), Image.BICUBIC, reducing_gap=3)
    return np.asarray(image, dtype=np.uint8)


def load_image(source, size: int) -> np.ndarray:
    """A picture as (size, size, 3) uint8 RGB for the encoder; ValueError if bad."""
    return encoder_input(open_image(source, size), size)
