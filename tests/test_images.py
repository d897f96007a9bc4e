"""Reference preparation, result inspection and metadata labelling, on real and built images."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import random
import struct
import threading
import warnings
import zlib
from collections.abc import Callable

import pytest
from PIL import ExifTags, Image, ImageChops, ImageCms, ImageFile, ImageStat

from conftest import SAMPLES, LoopGaps
from flux_ui.errors import ReferenceImageError
from flux_ui.images import (
    MAX_REFERENCE_BYTES,
    PreparedImage,
    embed_metadata,
    inspect_image,
    prepare_reference,
    prepare_references,
    read_metadata,
    references,
)
from flux_ui.registry import FOUR_MP

AI_MARK = b"http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
RED, BLUE = (255, 0, 0), (0, 0, 255)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def close(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def png_claiming(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header declares width × height (a decompression bomb's shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def animation(fmt: str, frames: int = 3) -> bytes:
    colours = [RED, (0, 255, 0), BLUE, (255, 255, 0)]
    seq = [Image.new("RGB", (32, 32), colours[i % 4]) for i in range(frames)]
    return encode(seq[0], fmt, save_all=True, append_images=seq[1:], duration=100, loop=0)


@pytest.fixture(scope="module")
def astronaut_6000() -> tuple[Image.Image, bytes]:
    """A real photo blown up to 6000×4000 and saved as a camera-sized JPEG."""
    img = Image.open(SAMPLES / "astronaut.png").convert("RGB").resize((6000, 4000), Image.Resampling.BICUBIC)
    return img, encode(img, "JPEG", quality=92)


# --- orientation and modes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "size", "red_at", "blue_at"),
    [
        (6, (32, 64), (24, 8), (8, 8)),  # turned a quarter clockwise: top-left goes top-right
        (8, (32, 64), (8, 56), (8, 8)),  # a quarter anticlockwise: top-left goes bottom-left
        (3, (64, 32), (56, 24), (8, 8)),  # half a turn: top-left goes bottom-right
    ],
)
def test_exif_orientation_is_applied(
    orientation: int, size: tuple[int, int], red_at: tuple[int, int], blue_at: tuple[int, int]
) -> None:
    stored = Image.new("RGB", (64, 32), BLUE)
    stored.paste(RED, (0, 0, 16, 16))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    prepared = prepare_reference(encode(stored, "JPEG", quality=95, exif=exif), index=1, max_pixels=FOUR_MP)

    assert (prepared.width, prepared.height) == size
    assert (prepared.original_width, prepared.original_height) == (64, 32)
    assert "rotated upright from its EXIF orientation" in prepared.adjustments
    out = decode(prepared.data)
    assert out.size == size
    assert close(out.getpixel(red_at), RED)
    assert close(out.getpixel(blue_at), BLUE)
    assert not out.getexif()  # no orientation left for a viewer to apply a second time


def test_upright_image_has_no_adjustments() -> None:
    prepared = prepare_reference(encode(Image.new("RGB", (64, 48), RED), "JPEG"), index=1, max_pixels=FOUR_MP)
    assert prepared.adjustments == ()
    assert (prepared.format, prepared.mime, prepared.original_format) == ("jpeg", "image/jpeg", "JPEG")
    assert base64.b64decode(prepared.b64()) == prepared.data
    assert not prepared.b64().startswith("data:")


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_becomes_rgb(fmt: str) -> None:
    cmyk = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # red ink: magenta + yellow
    prepared = prepare_reference(encode(cmyk, fmt), index=1, max_pixels=FOUR_MP)
    out = decode(prepared.data)
    assert (prepared.format, out.mode) == ("jpeg", "RGB")
    assert close(out.getpixel((32, 32)), RED)
    assert "converted from CMYK to RGB" in prepared.adjustments


def test_16_bit_png_keeps_its_contrast() -> None:
    gradient = Image.new("I;16", (256, 16))
    gradient.putdata([x * 257 for _ in range(16) for x in range(256)])  # 0..65535 across
    data = encode(gradient, "PNG")
    assert decode(data).mode == "I;16"

    prepared = prepare_reference(data, index=1, max_pixels=FOUR_MP)
    out = decode(prepared.data)
    assert out.mode == "L"
    row = [out.getpixel((x, 8)) for x in range(256)]
    assert row[0] <= 3 and row[-1] >= 252
    assert all(abs(value - x) <= 4 for x, value in enumerate(row))  # 0..255, not clipped white
    assert "converted from 16-bit grayscale to grayscale" in prepared.adjustments


def test_32_bit_integer_and_float_images_are_scaled() -> None:
    ints = Image.new("I", (64, 16))
    ints.putdata([x * 1000 for _ in range(16) for x in range(64)])  # 0..63000: a 16-bit range
    out = decode(prepare_reference(encode(ints, "TIFF"), index=1, max_pixels=None).data)
    assert out.getpixel((0, 8)) <= 3 and out.getpixel((63, 8)) >= 240

    floats = Image.new("F", (64, 16))
    floats.putdata([x / 63 for _ in range(16) for x in range(64)])  # 0.0..1.0
    out = decode(prepare_reference(encode(floats, "TIFF"), index=1, max_pixels=None).data)
    assert out.getpixel((0, 8)) <= 3 and out.getpixel((63, 8)) >= 250


def test_palette_with_transparency_becomes_rgba_png() -> None:
    pal = Image.new("P", (32, 32), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0])
    pal.paste(0, (0, 0, 16, 32))
    prepared = prepare_reference(encode(pal, "PNG", transparency=0), index=1, max_pixels=FOUR_MP)
    out = decode(prepared.data)
    assert (prepared.format, out.mode) == ("png", "RGBA")
    assert out.getpixel((0, 0))[3] == 0
    assert out.getpixel((31, 0)) == (255, 0, 0, 255)
    assert "converted from palette colour to RGBA" in prepared.adjustments


def test_palette_without_transparency_becomes_rgb_jpeg() -> None:
    pal = Image.new("RGB", (32, 32), RED).convert("P")
    prepared = prepare_reference(encode(pal, "GIF"), index=1, max_pixels=FOUR_MP)
    assert prepared.format == "jpeg" and prepared.original_format == "GIF"
    assert close(decode(prepared.data).getpixel((16, 16)), RED)


def test_grey_with_alpha_keeps_its_transparency() -> None:
    la = Image.new("LA", (32, 32), (128, 255))
    la.paste((200, 0), (0, 0, 32, 16))
    prepared = prepare_reference(encode(la, "PNG"), index=1, max_pixels=FOUR_MP)
    out = decode(prepared.data)
    assert (prepared.format, out.mode) == ("png", "RGBA")
    assert out.getpixel((0, 0))[3] == 0
    assert out.getpixel((0, 31)) == (128, 128, 128, 255)


def test_one_bit_image_becomes_grayscale() -> None:
    bits = Image.new("1", (64, 64), 0)
    bits.paste(1, (32, 0, 64, 64))
    prepared = prepare_reference(encode(bits, "PNG"), index=1, max_pixels=FOUR_MP)
    out = decode(prepared.data)
    assert (prepared.format, out.mode) == ("jpeg", "L")
    assert out.getpixel((8, 8)) < 10 and out.getpixel((56, 8)) > 245
    assert "converted from 1-bit black and white to grayscale" in prepared.adjustments


def test_real_transparency_is_kept_as_png() -> None:
    rgba = Image.new("RGBA", (64, 64), (*RED, 255))
    rgba.putalpha(Image.linear_gradient("L").resize((64, 64)))
    prepared = prepare_reference(encode(rgba, "PNG"), index=1, max_pixels=FOUR_MP)
    out = decode(prepared.data)
    assert (prepared.format, prepared.mime, out.mode) == ("png", "image/png", "RGBA")
    assert out.getchannel("A").tobytes() == rgba.getchannel("A").tobytes()
    assert prepared.adjustments == ()


def test_opaque_alpha_is_dropped_for_jpeg() -> None:
    rgba = Image.new("RGBA", (64, 64), (*BLUE, 255))
    prepared = prepare_reference(encode(rgba, "PNG"), index=1, max_pixels=FOUR_MP)
    assert prepared.format == "jpeg"
    assert decode(prepared.data).mode == "RGB"
    assert prepared.adjustments == ()


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "TIFF", "GIF"])
def test_other_still_formats_are_read(fmt: str) -> None:
    photo = Image.open(SAMPLES / "coffee.png").convert("RGB")
    prepared = prepare_reference(encode(photo, fmt), index=1, max_pixels=FOUR_MP)
    assert prepared.original_format == fmt
    assert (prepared.width, prepared.height) == (592, 400)
    assert mean_abs_diff(decode(prepared.data), photo.crop((4, 0, 596, 400))) < 12


# --- size ---------------------------------------------------------------------------------


def test_large_jpeg_is_downscaled_onto_the_grid(astronaut_6000: tuple[Image.Image, bytes]) -> None:
    source, data = astronaut_6000
    prepared = prepare_reference(data, index=1, max_pixels=FOUR_MP)

    assert (prepared.width, prepared.height) == (2496, 1664)
    assert prepared.width * prepared.height <= FOUR_MP
    assert prepared.width % 16 == 0 and prepared.height % 16 == 0
    assert (prepared.original_width, prepared.original_height, prepared.original_bytes) == (6000, 4000, len(data))
    assert len(prepared.data) < len(data) / 3
    assert prepared.adjustments[0] == "downscaled from 6000×4000 to 2496×1664 (the model reads at most 4.2 MP)"
    out = decode(prepared.data)
    assert out.size == (2496, 1664)
    # Same picture, same framing: a misplaced crop box would shift the whole photo.
    assert mean_abs_diff(out, source.resize(out.size, Image.Resampling.BILINEAR)) < 6


def test_nothing_is_downscaled_without_a_limit(astronaut_6000: tuple[Image.Image, bytes]) -> None:
    _, data = astronaut_6000
    prepared = prepare_reference(data, index=1, max_pixels=None)
    assert (prepared.width, prepared.height) == (6000, 4000)
    assert prepared.adjustments == ()


def test_off_grid_sides_are_centre_cropped_exactly() -> None:
    src = Image.new("RGBA", (1000, 1001))
    src.putdata([(x % 256, y % 256, (x // 256) * 60 + (y // 256), 200) for y in range(1001) for x in range(1000)])
    prepared = prepare_reference(encode(src, "PNG"), index=1, max_pixels=FOUR_MP, multiple=16)

    # 1000 is not a multiple of 16 either: both sides go down to 992, 4 px off each leading edge.
    assert (prepared.width, prepared.height) == (992, 992)
    assert prepared.adjustments == ("cropped 1000×1001 to 992×992 (centred) so both sides are multiples of 16",)
    out = decode(prepared.data)  # PNG (the alpha is not opaque), so pixels compare exactly
    assert out.getpixel((0, 0)) == src.getpixel((4, 4))
    assert out.getpixel((991, 991)) == src.getpixel((995, 995))
    assert out.tobytes() == src.crop((4, 4, 996, 996)).tobytes()


@pytest.mark.parametrize(("max_pixels", "multiple"), [(FOUR_MP, 16), (1_048_576, 32), (300_000, 16)])
@pytest.mark.parametrize("name", ["astronaut.png", "chelsea.png", "coffee.png", "horse.png", "rocket.jpg"])
def test_real_photos_fit_the_budget_and_the_grid(name: str, max_pixels: int, multiple: int) -> None:
    data = sample(name)
    prepared = prepare_reference(data, index=1, max_pixels=max_pixels, multiple=multiple)
    assert prepared.width * prepared.height <= max_pixels
    assert prepared.width % multiple == 0 and prepared.height % multiple == 0
    original = decode(data)
    assert abs(prepared.width / prepared.height - original.width / original.height) < 0.1
    out = decode(prepared.data)
    assert out.size == (prepared.width, prepared.height)
    assert mean_abs_diff(out, original.resize(out.size, Image.Resampling.BILINEAR)) < 25


def test_alpha_is_judged_on_what_is_sent() -> None:
    # horse.png is translucent only in its first two and last row; the grid crop removes them.
    prepared = prepare_reference(sample("horse.png"), index=1, max_pixels=FOUR_MP)
    assert (prepared.width, prepared.height, prepared.format) == (400, 320, "jpeg")
    framed = Image.new("RGBA", (64, 64), (*RED, 255))
    framed.paste((*RED, 0), (0, 0, 64, 8))
    cropped = prepare_reference(encode(framed.crop((0, 4, 64, 64)), "PNG"), index=1, max_pixels=FOUR_MP)
    assert (cropped.width, cropped.height, cropped.format) == (64, 48, "jpeg")
    kept = prepare_reference(encode(framed, "PNG"), index=1, max_pixels=FOUR_MP)
    assert kept.format == "png" and decode(kept.data).getpixel((0, 0))[3] == 0


def test_colour_profile_is_converted_to_srgb() -> None:
    data = sample("rocket.jpg")  # tagged Adobe RGB (1998)
    prepared = prepare_reference(data, index=1, max_pixels=FOUR_MP)
    assert "converted colours from its embedded profile (Adobe RGB (1998)) to sRGB" in prepared.adjustments

    source = decode(data)
    profile = ImageCms.ImageCmsProfile(io.BytesIO(source.info["icc_profile"]))
    managed = ImageCms.profileToProfile(source, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
    out = decode(prepared.data)
    assert "icc_profile" not in out.info
    assert out.size == (640, 416)
    window = (0, 5, 640, 421)  # 427 rows → 416, centred
    to_managed, to_unmanaged = mean_abs_diff(out, managed.crop(window)), mean_abs_diff(out, source.crop(window))
    assert to_managed + 2 < to_unmanaged  # JPEG noise vs a visible colour shift


def test_transparent_image_with_a_profile_keeps_its_alpha() -> None:
    adobe_rgb = decode(sample("rocket.jpg")).info["icc_profile"]
    rgba = Image.new("RGBA", (64, 64), (200, 30, 30, 255))
    rgba.paste((200, 30, 30, 0), (0, 0, 64, 16))
    prepared = prepare_reference(encode(rgba, "PNG", icc_profile=adobe_rgb), index=1, max_pixels=None)
    out = decode(prepared.data)
    assert (prepared.format, out.mode) == ("png", "RGBA")
    assert out.getpixel((0, 0))[3] == 0 and out.getpixel((0, 40))[3] == 255
    assert out.getpixel((0, 40))[0] > 220  # Adobe RGB's red is more saturated than sRGB's
    assert "icc_profile" not in out.info


def test_metadata_does_not_leave_the_machine() -> None:
    img = Image.new("RGB", (64, 64), RED)
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SecretCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 13.0, 37.5)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">home-address</x:xmpmeta>'
    data = encode(img, "JPEG", exif=exif, comment=b"secret comment", icc_profile=srgb, xmp=xmp)
    assert decode(data).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the fixture really has GPS

    prepared = prepare_reference(data, index=1, max_pixels=FOUR_MP)
    out = decode(prepared.data)
    assert not out.getexif()
    assert not out.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert not {"exif", "comment", "icc_profile", "xmp"} & set(out.info)
    for secret in (b"Exif", b"SecretCam", b"secret comment", b"home-address"):
        assert secret not in prepared.data


def test_png_text_chunks_are_dropped() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "Jane Secret")
    rgba = Image.new("RGBA", (32, 32), (*RED, 128))
    prepared = prepare_reference(encode(rgba, "PNG", pnginfo=info), index=1, max_pixels=FOUR_MP)
    assert prepared.format == "png"
    assert b"Jane Secret" not in prepared.data


# --- refusals -----------------------------------------------------------------------------


def _half(name: str) -> bytes:
    data = sample(name)
    return data[: len(data) // 2]


REFUSALS: list[tuple[str, Callable[[], bytes], tuple[str, ...]]] = [
    ("empty", lambda: b"", ("empty", "upload")),
    ("text", lambda: b"Dear model,\nplease draw a cat.\n", ("looks like a text file", "upload a JPEG, PNG or WebP")),
    ("pdf", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", ("PDF", "upload a JPEG, PNG or WebP")),
    (
        "heic",
        lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
        ("HEIC/HEIF photo", "upload a JPEG, PNG or WebP"),
    ),
    ("truncated jpeg", lambda: _half("rocket.jpg"), ("truncated", "upload the complete file")),
    ("truncated png", lambda: _half("astronaut.png"), ("truncated", "upload the complete file")),
    ("bomb header", lambda: png_claiming(20000, 20000), ("20000×20000", "400 MP", "resize it below 64 MP")),
    ("long side", lambda: encode(Image.new("1", (20000, 100)), "PNG"), ("16384 px", "resize it below")),
    ("gif", lambda: animation("GIF"), ("animated GIF with 3 frames", "export one frame as PNG or JPEG")),
    ("apng", lambda: animation("PNG", 2), ("animated PNG (APNG) with 2 frames", "export one frame")),
    ("webp", lambda: animation("WEBP", 4), ("animated WebP with 4 frames", "export one frame")),
    (
        "over 50 MB",
        lambda: encode(Image.new("RGB", (64, 64)), "PNG") + bytes(MAX_REFERENCE_BYTES),
        ("50.1 MB", "at most 50 MB", "export it as a JPEG or at a smaller size"),
    ),
    ("tiny", lambda: encode(Image.new("RGB", (8, 300)), "PNG"), ("only 8×300 px", "at least 16 px", "larger")),
]


@pytest.mark.parametrize(("case", "build", "words"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_image_and_the_fix(case: str, build: Callable[[], bytes], words: tuple[str, ...]) -> None:
    index = 3 + len(case)  # any slot number: the message must carry it
    with pytest.raises(ReferenceImageError) as caught:
        prepare_reference(build(), index=index, max_pixels=FOUR_MP)
    err = caught.value
    assert err.index == index and err.field == "references"
    assert err.message.startswith(f"image {index} ")
    for word in words:
        assert word in err.message


def test_a_strip_too_thin_at_the_pixel_budget_is_refused() -> None:
    with pytest.raises(ReferenceImageError) as caught:
        prepare_reference(encode(Image.new("1", (16384, 30)), "PNG"), index=2, max_pixels=100_000)
    assert caught.value.message == (
        "image 2 is 16384×30 px, so narrow that it would be 7390×13 px at the model's pixel budget; "
        "FLUX needs at least 16 px on each side: crop it to a less elongated shape"
    )


def test_header_over_pillows_threshold_is_refused_without_a_warning() -> None:
    bomb = png_claiming(10000, 9600)  # 96 MP: over Pillow's default warning threshold
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ReferenceImageError, match="image 2 is 10000×9600"):
            prepare_reference(bomb, index=2, max_pixels=FOUR_MP)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize("side", [40, 64])  # Pillow would warn at 1600 px and raise at 4096 px
def test_a_lowered_pillow_limit_becomes_a_refusal(monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    data = encode(Image.new("RGB", (side, side)), "PNG")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ReferenceImageError, match="decompression-bomb limit; resize it below 1,000 pixels"):
            prepare_reference(data, index=1, max_pixels=FOUR_MP)
    assert not seen


def test_truncated_images_are_not_silently_accepted() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_jpeg_data_is_refused() -> None:
    data = bytearray(sample("rocket.jpg"))
    data[600:] = bytes(len(data) - 600)  # keep the header, zero the rest
    with pytest.raises(ReferenceImageError) as caught:
        prepare_reference(bytes(data), index=5, max_pixels=FOUR_MP)
    assert caught.value.message.startswith("image 5 is a damaged JPEG file; re-save it as PNG or JPEG")


def test_damaged_files_only_ever_raise_reference_errors() -> None:
    rng = random.Random(20240611)
    photo = decode(sample("chelsea.png")).convert("RGB")
    originals = [sample("rocket.jpg"), sample("horse.png"), encode(photo, "WEBP"), encode(photo, "GIF")]
    for _ in range(150):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[pos] = rng.randrange(256)
            else:
                del data[pos : pos + rng.randint(1, 400)]
        try:
            prepare_reference(bytes(data), index=1, max_pixels=1_048_576)
        except ReferenceImageError as err:
            assert err.message.startswith("image 1 ")
        with contextlib.suppress(ValueError):  # the only error inspect_image may raise
            inspect_image(bytes(data))
        assert read_metadata(bytes(data)) is None


# --- several references -------------------------------------------------------------------


async def test_prepare_references_keeps_order() -> None:
    sizes = [(64, 48), (160, 96), (32, 32)]
    data = [encode(Image.new("RGB", size, RED), "JPEG") for size in sizes]
    prepared = await prepare_references(data, max_pixels=FOUR_MP)
    assert [(p.width, p.height) for p in prepared] == sizes
    assert all(isinstance(p, PreparedImage) for p in prepared)
    assert await prepare_references([], max_pixels=FOUR_MP) == []


async def test_prepare_references_runs_in_worker_threads_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The barrier only opens when four calls are inside it together: proof without timing.
    barrier = threading.Barrier(4, timeout=10)
    threads: set[int] = set()
    real = references.prepare_reference

    def waiting(data: bytes, *, index: int, max_pixels: int | None, multiple: int = 16) -> PreparedImage:
        threads.add(threading.get_ident())
        barrier.wait()
        return real(data, index=index, max_pixels=max_pixels, multiple=multiple)

    monkeypatch.setattr(references, "prepare_reference", waiting)
    data = [encode(Image.new("RGB", (32 * (i + 1), 32), RED), "PNG") for i in range(4)]
    prepared = await prepare_references(data, max_pixels=FOUR_MP)
    assert [p.width for p in prepared] == [32, 64, 96, 128]
    assert len(threads) == 4 and threading.get_ident() not in threads


async def test_event_loop_stays_responsive(astronaut_6000: tuple[Image.Image, bytes]) -> None:
    _, data = astronaut_6000
    async with LoopGaps() as gaps:
        prepared = await prepare_references([data] * 4, max_pixels=FOUR_MP)
    assert [(p.width, p.height) for p in prepared] == [(2496, 1664)] * 4
    assert len(gaps) >= 5
    assert max(gaps) < 0.2


async def test_every_bad_reference_is_reported_at_once() -> None:
    good = encode(Image.new("RGB", (64, 64), RED), "JPEG")
    with pytest.raises(ReferenceImageError) as caught:
        await prepare_references([good, b"just text", good, b"", animation("GIF")], max_pixels=FOUR_MP)
    err = caught.value
    assert err.index == 2
    lines = err.message.splitlines()
    assert lines[0] == "3 of 5 reference images cannot be used:"
    assert [line.split(" is ")[0] for line in lines[1:]] == ["image 2", "image 4", "image 5"]


async def test_a_single_bad_reference_keeps_its_own_message() -> None:
    good = encode(Image.new("RGB", (64, 64), RED), "JPEG")
    with pytest.raises(ReferenceImageError) as caught:
        await prepare_references([good, good, b"%PDF-1.4"], max_pixels=FOUR_MP)
    assert caught.value.index == 3
    assert caught.value.message.startswith("image 3 is not an image file flux-ui can read (it looks like a PDF")


# --- inspecting results -------------------------------------------------------------------


@pytest.fixture(scope="module")
def results() -> dict[str, bytes]:
    """What the service might return: a real photo as JPEG, PNG, lossy and lossless WebP."""
    photo = Image.open(SAMPLES / "coffee.png").convert("RGB")
    rgba = photo.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(photo.size))
    return {
        "jpeg": encode(photo, "JPEG", quality=90),
        "png": sample("coffee.png"),
        "webp": encode(photo, "WEBP", quality=80),
        "webp-lossless": encode(photo, "WEBP", lossless=True),
        "webp-alpha": encode(rgba, "WEBP", lossless=True),
        "webp-alpha-lossy": encode(rgba, "WEBP", quality=80),
    }


@pytest.mark.parametrize(
    ("key", "fmt"), [("jpeg", "jpeg"), ("png", "png"), ("webp", "webp"), ("webp-lossless", "webp")]
)
def test_inspect_image_reads_format_and_size(results: dict[str, bytes], key: str, fmt: str) -> None:
    info = inspect_image(results[key])
    assert (info.format, info.width, info.height, info.mime) == (fmt, 600, 400, f"image/{fmt}")


@pytest.mark.parametrize("key", ["jpeg", "png", "webp"])
def test_inspect_image_rejects_truncated_results(results: dict[str, bytes], key: str) -> None:
    data = results[key]
    with pytest.raises(ValueError, match="truncated"):
        inspect_image(data[: len(data) * 2 // 3])


def test_inspect_image_rejects_a_damaged_png() -> None:
    data = bytearray(sample("coffee.png"))
    data[len(data) // 2] ^= 0xFF  # inside IDAT: the chunk's CRC no longer matches
    with pytest.raises(ValueError, match="PNG image is damaged"):
        inspect_image(bytes(data))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "an empty file"),
        (b'{"error": {"code": "content_filter"}}', "JSON"),
        (b"<!DOCTYPE html><html><body>502 Bad Gateway", "web page"),
        (b"GIF89a\x01\x00\x01\x00", "a GIF image"),
        (bytes(range(256)), "unknown type"),
    ],
)
def test_inspect_image_names_what_it_got(data: bytes, words: str) -> None:
    with pytest.raises(ValueError, match="expected a JPEG, PNG or WebP image but got") as caught:
        inspect_image(data)
    assert words in str(caught.value)


# --- metadata -----------------------------------------------------------------------------

META = {
    "prompt": "a red fox in deep snow, golden hour",
    "model": "FLUX.2-pro",
    "seed": 42,
    "width": 1024,
    "height": 768,
    "extra": {"tier": "low", "refs": [1, 2]},
}


def _pixels(data: bytes) -> bytes:
    return decode(data).tobytes()


@pytest.mark.parametrize("key", ["jpeg", "png", "webp", "webp-lossless", "webp-alpha", "webp-alpha-lossy"])
def test_metadata_round_trips_without_touching_pixels(results: dict[str, bytes], key: str) -> None:
    data = results[key]
    labelled = embed_metadata(data, META)

    assert read_metadata(labelled) == META
    assert _pixels(labelled) == _pixels(data)
    assert inspect_image(labelled) == inspect_image(data)
    assert labelled.count(AI_MARK) == 1
    assert b'xmp:CreatorTool="flux-ui"' in labelled
    img = decode(labelled)
    assert AI_MARK in (img.info["xmp"] if isinstance(img.info["xmp"], bytes) else img.info["xmp"].encode())
    if key != "png":
        assert img.getexif()[ExifTags.Base.Software] == "flux-ui"


def test_png_labels_are_chunks_after_the_image_data() -> None:
    data = sample("astronaut.png")
    labelled = embed_metadata(data, META)
    img = decode(labelled)
    assert json.loads(img.text["flux-ui"]) == META
    assert img.text["parameters"] == (
        "a red fox in deep snow, golden hour | model: FLUX.2-pro, seed: 42, width: 1024, height: 768, "
        'extra: {"tier": "low", "refs": [1, 2]}'
    )
    idat = [c for c in _png_chunk_list(data) if c[0] == b"IDAT"]
    assert [c for c in _png_chunk_list(labelled) if c[0] == b"IDAT"] == idat  # pixel bytes as they were
    assert labelled.endswith(b"IEND\xaeB`\x82")


def _png_chunk_list(data: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert zlib.crc32(kind + body).to_bytes(4, "big") == data[pos + 8 + length : pos + 12 + length]
        out.append((kind, body))
        pos += 12 + length
    return out


def test_jpeg_labels_follow_jfif_and_keep_the_scan_bytes() -> None:
    data = sample("rocket.jpg")  # starts SOI, APP0 JFIF
    labelled = embed_metadata(data, META)
    assert labelled[:2] == b"\xff\xd8" and labelled[6:11] == b"JFIF\x00"
    app0_end = 4 + int.from_bytes(data[4:6], "big")
    assert labelled[:app0_end] == data[:app0_end]
    assert labelled[app0_end : app0_end + 2] == b"\xff\xe1"
    assert labelled[app0_end + 4 : app0_end + 10] == b"Exif\x00\x00"
    sos = data.index(b"\xff\xda")
    assert labelled.endswith(data[sos:])  # entropy-coded data untouched
    comment = decode(labelled).getexif().get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment]
    assert comment.startswith(b"ASCII\x00\x00\x00")


def test_non_ascii_metadata_round_trips(results: dict[str, bytes]) -> None:
    meta = {"prompt": "雪の中の赤い狐 — ünïcödé ✓", "seed": 7}
    for key in ("jpeg", "png", "webp"):
        labelled = embed_metadata(results[key], meta)
        assert read_metadata(labelled) == meta
    comment = decode(embed_metadata(results["jpeg"], meta)).getexif().get_ifd(ExifTags.IFD.Exif)
    assert comment[ExifTags.Base.UserComment].startswith(b"UNICODE\x00")


@pytest.mark.parametrize("key", ["jpeg", "png", "webp", "webp-alpha-lossy"])
def test_re_embedding_replaces_the_old_label(results: dict[str, bytes], key: str) -> None:
    first = embed_metadata(results[key], {"prompt": "first", "leaked_token": "abc123secret"})
    second = embed_metadata(first, {"prompt": "second", "seed": 1})
    assert read_metadata(second) == {"prompt": "second", "seed": 1}
    assert b"abc123secret" not in second and b"leaked_token" not in second
    assert second.count(AI_MARK) == 1
    assert _pixels(second) == _pixels(results[key])
    assert len(second) == len(embed_metadata(results[key], {"prompt": "second", "seed": 1}))


def test_foreign_xmp_is_replaced_not_doubled() -> None:
    data = sample("chelsea.png")  # ships with its own XMP packet
    labelled = embed_metadata(data, META)
    keys = [body.split(b"\x00", 1)[0] for kind, body in _png_chunk_list(labelled) if kind in (b"iTXt", b"tEXt")]
    assert keys.count(b"XML:com.adobe.xmp") == 1
    assert read_metadata(labelled) == META


def test_webp_with_exif_already_is_relabelled(results: dict[str, bytes]) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SomeCam"
    data = encode(decode(results["webp"]), "WEBP", quality=80, exif=exif)  # a VP8X file with EXIF
    labelled = embed_metadata(data, META)
    assert read_metadata(labelled) == META
    assert labelled.count(b"EXIF") == 1
    assert decode(labelled).getexif()[ExifTags.Base.Software] == "flux-ui"


def test_long_prompts_shorten_the_jpeg_description_only(results: dict[str, bytes]) -> None:
    meta = {"prompt": "snow " * 8000, "seed": 3}  # 40 kB twice (JSON and description) > 64 kB
    labelled = embed_metadata(results["jpeg"], meta)
    assert read_metadata(labelled) == meta
    description = decode(labelled).getexif()[ExifTags.Base.ImageDescription]
    assert description.endswith("...") and len(description) < 30000

    with pytest.raises(ValueError, match="metadata too large for a JPEG"):
        embed_metadata(results["jpeg"], {"prompt": "snow " * 14000})
    assert read_metadata(embed_metadata(results["png"], {"prompt": "snow " * 14000})) is not None


def test_embed_metadata_refuses_other_files() -> None:
    with pytest.raises(ValueError, match="cannot embed metadata"):
        embed_metadata(animation("GIF"), META)
    with pytest.raises(ValueError, match="cannot embed metadata"):
        embed_metadata(_half("astronaut.png"), META)


GARBAGE = [b"", b"garbage", None, 12345, "a string", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe1\x00"]
GARBAGE += [b"RIFF\xff\xff\xff\xffWEBP", b"RIFF\x04\x00\x00\x00WEBP", b"\xff\xd8\xff" + bytes(100)]


@pytest.mark.parametrize("garbage", GARBAGE)
def test_read_metadata_never_raises(garbage: object) -> None:
    assert read_metadata(garbage) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["astronaut.png", "chelsea.png", "rocket.jpg"])
def test_unlabelled_images_have_no_metadata(name: str) -> None:
    assert read_metadata(sample(name)) is None
