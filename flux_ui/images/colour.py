"""Colour management: an embedded ICC profile converted to sRGB, when Pillow has LittleCMS."""

from __future__ import annotations

import io

from PIL import Image

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without LittleCMS: colours are passed through unmanaged
    ImageCms = None  # type: ignore[assignment]


def to_srgb(img: Image.Image, icc: bytes, output_mode: str | None = None) -> tuple[Image.Image, str | None]:
    """Convert through an embedded ICC profile to sRGB; (image, profile name) or (image, None) if not done."""
    if ImageCms is None:
        return img, None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = (ImageCms.getProfileDescription(source) or "").strip() or "unnamed"
        if "srgb" in description.lower():
            return img, None  # already sRGB: dropping the tag changes nothing
        # A profile object is not safe to share between threads, so sRGB is built per call.
        srgb = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(img, source, srgb, outputMode=output_mode or img.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return img, None
    if converted is None:
        return img, None
    return converted, description
