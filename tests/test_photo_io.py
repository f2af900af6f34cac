"""Reading users' photos (ckpp_tools/photo_io.py): upright as shown, every pixel format, clear reasons."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image, ImageOps

from ckpp_tools import photo_io
from ckpp_tools.cli import main
from ckpp_tools.photo_io import BACKGROUND, PhotoError, decode_photo, read_photo

#: the transpose that *stores* an upright picture so that EXIF orientation k shows it upright again
_STORE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
          5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_270}


def _jpeg(img: Image.Image, orientation: int | None = None, **kw) -> bytes:
    b = io.BytesIO()
    if orientation is not None:
        ex = Image.Exif()
        ex[0x0112] = orientation
        kw["exif"] = ex.tobytes()
    img.save(b, "JPEG", quality=95, **kw)
    return b.getvalue()


@pytest.fixture(scope="module")
def portrait():
    """A non-square real face (so a wrong rotation changes the shape, not only the pixels)."""
    return Image.fromarray(skimage.data.astronaut()[:, 64:448])


@pytest.mark.parametrize("k", range(1, 9))
def test_exif_orientation_as_a_viewer_shows_it(portrait, k):
    stored = portrait if k == 1 else portrait.transpose(_STORE[k])
    data = _jpeg(stored, k)
    got = decode_photo(data)
    want = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert got.shape == want.shape == (512, 384, 3)
    assert np.array_equal(got, want)
    assert np.abs(got.astype(float) - np.asarray(portrait)).mean() < 3.0     # upright again (JPEG noise only)


def test_a_sideways_phone_photo_gets_its_face_found_upright(portrait, tmp_path):
    """The bug this module fixes: `ckpp sample --photos` read phone portraits sideways."""
    from ckpp_tools.photo_sources import check_photo

    up, side = tmp_path / "up.jpg", tmp_path / "phone.jpg"
    up.write_bytes(_jpeg(portrait))
    side.write_bytes(_jpeg(portrait.transpose(_STORE[6]), 6))
    a, b = check_photo(str(up)), check_photo(str(side))
    assert a["status"] == b["status"] == "ok" and a["size"] == b["size"] == (384, 512)
    assert np.abs(a["landmarks"] - b["landmarks"]).max() < 2.0


def test_pixel_formats(tmp_path):
    rgb = skimage.data.astronaut()[:64, :48]
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:, :24, 3] = 0                                                    # left half transparent
    b = io.BytesIO(); Image.fromarray(rgba).save(b, "PNG")
    got = decode_photo(b.getvalue())
    assert (got[:, :24] == BACKGROUND).all() and np.array_equal(got[:, 24:], rgb[:, 24:])

    pal = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    b = io.BytesIO(); pal.save(b, "PNG", transparency=0)
    got = decode_photo(b.getvalue())
    idx = np.asarray(pal)
    assert got.shape == (64, 48, 3) and (got[idx == 0] == BACKGROUND).all()

    g16 = (np.linspace(0, 65535, 64 * 48).reshape(64, 48)).astype(np.uint16)
    b = io.BytesIO(); Image.fromarray(g16).save(b, "PNG")
    got = decode_photo(b.getvalue())
    assert got.dtype == np.uint8 and got.shape == (64, 48, 3)
    assert abs(int(got[0, 0, 0]) - 0) <= 1 and abs(int(got[-1, -1, 0]) - 255) <= 1

    for mode, fmt in (("L", "JPEG"), ("CMYK", "JPEG"), ("RGB", "GIF"), ("RGB", "WEBP"), ("RGB", "TIFF"), ("RGB", "BMP")):
        b = io.BytesIO(); Image.fromarray(rgb).convert(mode).save(b, fmt)
        got = decode_photo(b.getvalue())
        assert got.dtype == np.uint8 and got.shape == (64, 48, 3), (mode, fmt)
        assert np.abs(got.astype(float) - rgb).mean() < 40, (mode, fmt)      # the picture, not garbage


def _png_header(w: int, h: int) -> bytes:
    """A few hundred bytes that claim w x h pixels (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def test_bad_files_name_the_reason_and_the_fix(portrait, tmp_path):
    full = _jpeg(portrait)
    cases = {
        "empty.jpg": (b"", "empty", "0 bytes"),
        "cut.jpg": (full[: len(full) // 2], "truncated", "ends before the image does"),
        "notes.jpg": (b"not an image at all" * 10, "unreadable", "not a decodable image"),
        "iphone.heic": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "unsupported_format", "HEIC"),
        "tiny.png": (None, "too_small", "only 10x10 pixels"),
        "bomb.png": (_png_header(40000, 40000), "too_large", "1600 MP"),
        "big.png": (_png_header(12500, 12500), "too_large", "12500x12500"),
    }
    b = io.BytesIO(); Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(b, "PNG")
    cases["tiny.png"] = (b.getvalue(),) + cases["tiny.png"][1:]
    for name, (data, reason, text) in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(PhotoError) as ei:
            read_photo(p)
        assert ei.value.reason == reason and text in str(ei.value), (name, str(ei.value))
        assert name in str(ei.value) and "fix:" in str(ei.value)
    with pytest.raises(PhotoError, match="no such photo"):
        read_photo(tmp_path / "absent.jpg")
    assert set(photo_io._FIX) == set(photo_io.REASONS)


def test_generate_and_sample_report_the_photo_problem(portrait, tmp_path):
    from ckpp_tools.photo_sources import check_photo

    heic = tmp_path / "IMG_0001.HEIC"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    r = check_photo(str(heic))
    assert r["status"] == "unreadable" and "HEIC" in r["detail"]
    cut = tmp_path / "cut.jpg"
    full = _jpeg(portrait)
    cut.write_bytes(full[: len(full) // 3])
    res = CliRunner().invoke(main, ["generate", str(tmp_path / "no-run"), str(cut), "--emotion", "surprise"])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "cut.jpg" in res.output and "incomplete" in res.output, res.output
