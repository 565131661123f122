"""Screenshots for vision models: Qwen2.5-VL's smart_resize, a PNG data URL, and the scale back to the viewport."""

from __future__ import annotations

import base64
import io
import math
import struct
from dataclasses import dataclass

from PIL import Image

from sparkpilot.profiles import ModelProfile


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 3136,
                 max_pixels: int = 12_845_056) -> tuple[int, int]:
    """(height, width) with sides multiples of `factor` and area within the bounds (Qwen2.5-VL, as Fara uses it)."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio {max(height, width) / min(height, width):.0f} is above 200")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass
class Screen:
    """A screenshot as the model sees it, and how its pixels map to the viewport's."""

    data_url: str
    width: int
    height: int
    scale_x: float  # viewport px per image px
    scale_y: float

    def to_viewport(self, x: float, y: float) -> tuple[float, float]:
        """Image coordinates → viewport (CSS) coordinates."""
        return x * self.scale_x, y * self.scale_y

    @property
    def tokens(self) -> int:
        """Visual tokens after the 2x2 patch merge (one per 28x28 block)."""
        return (self.width // 28) * (self.height // 28)


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, without decoding the image."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return struct.unpack(">II", png[16:24])


def encode_screen(png: bytes, viewport: tuple[int, int], profile: ModelProfile) -> Screen:
    """Resize a viewport PNG to the model's resolution and encode it as a data URL.

    A screenshot that already has the model's size (a viewport of e.g. 1428x896) is passed through
    as is: decoding, resizing and re-encoding cost ~70-100 ms a step on this CPU.
    """
    size = png_size(png)
    height, width = smart_resize(size[1], size[0], profile.image_factor, profile.min_pixels, profile.max_pixels)
    if (width, height) != size:
        image = Image.open(io.BytesIO(png)).convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        image.save(buf, format="PNG", compress_level=1)  # fast: the bytes only cross localhost
        png = buf.getvalue()
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    return Screen(url, width, height, viewport[0] / width, viewport[1] / height)
