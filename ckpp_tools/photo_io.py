"""Read one photo file as the person who took it sees it: RGB uint8, upright, transparency flattened.

Why a module of its own: photos come from users (`ckpp generate PHOTO`, `ckpp sample --photos DIR`,
`ckpp benchmark --photos DIR`), and real photos are odd in ways the sample data never is:

- phone cameras store a portrait shot sideways and say so in EXIF (orientation 6/8): OpenCV's
  IMREAD_UNCHANGED ignores the tag, so the face arrived rotated by 90 degrees, no face was found (or a
  sideways one was animated);
- a truncated download decodes differently per OpenCV version (4.x: a half-grey picture; 5.x: nothing,
  plus log lines on stderr);
- palette PNGs with transparency, grey+alpha, 16-bit PNG/TIFF, CMYK JPEG, animated GIF (first frame);
- HEIC/AVIF from iPhones (no decoder here: say "convert it");
- decompression bombs (a tiny file that decodes to gigapixels).

Pillow decodes (the same libjpeg-turbo/libpng as OpenCV: JPEG pixels are identical), applies the EXIF
orientation and refuses truncated files; OpenCV is the fallback for formats Pillow does not identify.
Every failure is a PhotoError with a short reason a batch report can print and a message naming the file.
"""
from __future__ import annotations

import io
import os
import re
import warnings

import numpy as np

from .errors import CkppError

#: transparent pixels are composited onto this light studio grey (the NBA headshots' background)
BACKGROUND = 225
#: refuse photos with more pixels than this (a 108-MP phone photo is ~1.1e8), before decoding: Pillow's own
#: bomb guard warns at 89 MP (in the middle of a progress bar) and raises at 179 MP
MAX_PIXELS = 150_000_000
#: smallest usable side in pixels (a face needs a few dozen)
MIN_SIDE = 16
#: EXIF tag of the orientation
_ORIENTATION = 0x0112
#: reasons a photo cannot be read (PhotoError.reason)
REASONS = ("missing", "empty", "unsupported_format", "truncated", "too_large", "too_small", "unreadable")

_FIX = {
    "missing": "check the path",
    "empty": "the file has no data: copy the photo again",
    "unsupported_format": "convert it to JPEG or PNG (e.g. `ffmpeg -i photo.heic photo.jpg`)",
    "truncated": "the file is incomplete (an interrupted download or copy): copy the photo again",
    "too_large": f"resize it below {MAX_PIXELS / 1e6:.0f} megapixels",
    "too_small": f"use a photo at least {MIN_SIDE} pixels on each side",
    "unreadable": "pass a JPEG, PNG, WebP, BMP or TIFF photo (the file may be damaged or not an image)",
}


class PhotoError(CkppError):
    """A photo that cannot be read: `reason` is one of REASONS, `detail` the human explanation."""

    def __init__(self, reason: str, detail: str, path: str | os.PathLike | None = None):
        self.reason, self.detail = reason, detail
        super().__init__(detail, path=path, fix=_FIX.get(reason))


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8 (H,W,3), upright (EXIF orientation applied), transparency composited onto BACKGROUND.
    Anything else raises PhotoError naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PhotoError("missing", "no such photo" if not os.path.exists(path) else "not a file", path)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise PhotoError("unreadable", f"cannot open the file ({exc.strerror or exc})", path) from None
    try:
        return decode_photo(data)
    except PhotoError as exc:
        raise PhotoError(exc.reason, exc.detail, path) from None


def decode_photo(data: bytes) -> np.ndarray:
    """read_photo on the bytes of a file (PhotoError without a path)."""
    if len(data) == 0:
        raise PhotoError("empty", "empty file (0 bytes)")
    kind = _sniff(data)
    if kind in ("heic", "avif"):
        raise PhotoError("unsupported_format", f"{kind.upper()} photos cannot be decoded here")
    img = _decode_pillow(data)
    if img is None:
        img = _decode_opencv(data)
    if img is None:
        raise PhotoError("unreadable", "not a decodable image" + (f" ({kind} data)" if kind else ""))
    if min(img.shape[:2]) < MIN_SIDE:
        raise PhotoError("too_small", f"only {img.shape[1]}x{img.shape[0]} pixels")
    return np.ascontiguousarray(img)


def as_photo(photo, where: str | None = None) -> np.ndarray:
    """A photo given any way a Python caller holds one -> RGB uint8 (H,W,3), read as read_photo reads files:
    a path (str / PathLike: read_photo), bytes (decode_photo), a PIL image (EXIF orientation applied, any mode
    flattened by the same rules) or an array ((H,W) grey, (H,W,3) RGB, (H,W,4) RGBA; uint8, or float in [0,1]).
    Anything else, or an array of the wrong shape / size, is a PhotoError naming `where` (default: the path,
    else "photo"; e.g. an upload's own file name instead of the server's copy of it)."""
    if isinstance(photo, (str, os.PathLike)):
        try:
            return read_photo(photo)
        except PhotoError as exc:
            if where is None or exc.reason == "missing":
                raise
            raise PhotoError(exc.reason, exc.detail, where) from None
    where = where or "photo"
    if isinstance(photo, (bytes, bytearray, memoryview)):
        try:
            return decode_photo(bytes(photo))
        except PhotoError as exc:
            raise PhotoError(exc.reason, exc.detail, where) from None
    if type(photo).__module__.startswith("PIL.") and hasattr(photo, "getexif"):
        w, h = photo.size
        if w * h > MAX_PIXELS:
            raise PhotoError("too_large", f"{w}x{h} pixels ({w * h / 1e6:.0f} MP)", where)
        img = orient(_to_rgb(photo), _orientation_of(photo))
    elif isinstance(photo, np.ndarray):
        img = _array_to_rgb(photo, where)
    else:
        raise PhotoError("unreadable", f"a {type(photo).__name__} is not a photo", where)
    if min(img.shape[:2]) < MIN_SIDE:
        raise PhotoError("too_small", f"only {img.shape[1]}x{img.shape[0]} pixels", where)
    return np.ascontiguousarray(img)


def _array_to_rgb(a: np.ndarray, where: str) -> np.ndarray:
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
        raise PhotoError("unreadable", f"an array of shape {a.shape} is not a photo (want (H,W), (H,W,3) or (H,W,4))",
                         where)
    if a.shape[0] * a.shape[1] > MAX_PIXELS:
        raise PhotoError("too_large", f"{a.shape[1]}x{a.shape[0]} pixels ({a.shape[0] * a.shape[1] / 1e6:.0f} MP)",
                         where)
    if a.dtype != np.uint8:
        if a.dtype.kind not in "fiu" or a.size == 0 or not np.isfinite(a).all() or a.min() < 0 or \
                (a.dtype.kind == "f" and a.max() > 1.0):
            raise PhotoError("unreadable", f"an array of {a.dtype} values is not a photo (want uint8 0-255, or "
                                           "float 0-1)", where)
        top = 1.0 if a.dtype.kind == "f" else (65535.0 if a.max() > 255 else 255.0)
        a = np.clip(a.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if a.ndim == 2 or a.shape[2] == 1:
        return np.repeat(a.reshape(a.shape[0], a.shape[1], 1), 3, axis=2)
    return composite(a) if a.shape[2] == 4 else a


def _sniff(data: bytes) -> str:
    """Container type of formats neither decoder reads (ISO-BMFF 'ftyp' brands), else ''."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "avif"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "heic"
        return "video"
    return ""


def _decode_pillow(data: bytes) -> np.ndarray | None:
    """Pillow's decode, or None when Pillow does not identify the format; truncation and bombs raise."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # palette-transparency and bomb warnings: handled here
            try:   # Pillow's global bomb limit is left alone (threads): ours is lower and names the size
                im = Image.open(io.BytesIO(data))
            except Image.DecompressionBombError as exc:   # over twice Pillow's limit (~179 MP)
                size = re.search(r"\((\d+) pixels\)", str(exc))
                mp = f" ({int(size.group(1)) / 1e6:.0f} MP)" if size else ""
                raise PhotoError("too_large", f"larger than {MAX_PIXELS / 1e6:.0f} megapixels{mp}") from None
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise PhotoError("too_large", f"{w}x{h} pixels ({w * h / 1e6:.0f} MP)")
            orientation = _orientation_of(im)
            im.seek(0)                                # animated GIF/WebP: the first frame
            im.load()
            arr = _to_rgb(im)
    except PhotoError:
        raise
    except UnidentifiedImageError:
        return None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc)
        if "truncated" in text or isinstance(exc, EOFError) or "broken data stream" in text:
            raise PhotoError("truncated", "the file ends before the image does") from None
        raise PhotoError("unreadable", f"damaged image data ({text[:80]})") from None
    return orient(arr, orientation)


def _to_rgb(im) -> np.ndarray:
    """RGB uint8 of any Pillow mode: 16/32-bit and float scaled to 8 bits, alpha composited."""
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        if mode == "F" and a.max() <= 1.0:
            top = 1.0
        g = np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        im = im.convert("RGBA")
    elif mode not in ("RGB", "RGBA"):
        im = im.convert("RGB")                         # L, 1, CMYK, YCbCr, LAB, HSV
    arr = np.asarray(im)
    if arr.shape[2] == 4:
        return composite(arr)
    return arr


def composite(rgba: np.ndarray) -> np.ndarray:
    """RGB uint8 of an RGBA uint8 image over a BACKGROUND grey."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * a + BACKGROUND * (1.0 - a)
    return (rgb + 0.5).astype(np.uint8)


#: file endings whose EXIF orientation frame folders honour (PNG/BMP frames, e.g. CK+, carry none)
EXIF_ENDINGS = (".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".webp")


def exif_orientation(path: str | os.PathLike) -> int:
    """EXIF orientation (1-8) of an image file from its header alone (~0.1 ms; no pixels decoded); 1 when
    it has none, is not a JPEG/TIFF/WebP, or cannot be read (the decoder then reports the file)."""
    if not os.fspath(path).lower().endswith(EXIF_ENDINGS):
        return 1
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return _orientation_of(im)
    except Exception:  # noqa: BLE001 - a damaged header is the decoder's to report
        return 1


def _orientation_of(im) -> int:
    """EXIF orientation of an opened Pillow image; 1 when absent or damaged (a bad EXIF block must not
    lose the photo)."""
    try:
        return int(im.getexif().get(_ORIENTATION, 1) or 1)
    except Exception:  # noqa: BLE001
        return 1


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as stored -> as shown, for EXIF orientation 1-8 (others: unchanged)."""
    if orientation == 2:
        return img[:, ::-1]
    if orientation == 3:
        return img[::-1, ::-1]
    if orientation == 4:
        return img[::-1]
    if orientation == 5:
        return img.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(img, -1)
    if orientation == 7:
        return img[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(img, 1)
    return img


def _decode_opencv(data: bytes) -> np.ndarray | None:
    """OpenCV's decode for what Pillow does not identify (e.g. PFM, Sun raster), or None."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim not in (2, 3):
        return None
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        f = img.astype(np.float64)
        top = 1.0 if f.max() <= 1.0 else 255.0
        img = np.clip(f / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        return np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
    if img.shape[2] == 4:
        return composite(img[..., [2, 1, 0, 3]])
    return np.ascontiguousarray(img[..., 2::-1])
