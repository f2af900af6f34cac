"""Decoding: frames counted as decoded, natural order, gray stays gray, broken files never raise or hang."""
import os
import shutil

import cv2
import numpy as np

from ckpp_tools import video_io
from prepare_helpers import photo, write_frames, write_video


def test_natural_order_and_gray_folder(tmp_path):
    d = tmp_path / "seq"
    write_frames(str(d), 12, gray=True, pattern="img{t}.png")  # img1 .. img12, not zero-padded
    files = [os.path.basename(p) for p in video_io.list_frame_files(str(d))]
    assert files[:3] == ["img1.png", "img2.png", "img3.png"] and files[-1] == "img12.png"
    dec = video_io.read_clip(str(d))
    assert dec.n == 12 and dec.frames[0].ndim == 2 and dec.frames[0].dtype == np.uint8 and dec.error == ""
    # img10 (written as frame index 9, rolled by 9 rows) comes 10th: order really is natural
    ref = cv2.cvtColor(np.roll(photo((80, 64)), 9, axis=0), cv2.COLOR_RGB2GRAY)
    assert np.array_equal(dec.frames[9], ref)


def test_colour_is_rgb(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    img = np.zeros((20, 30, 3), np.uint8)
    img[..., 0] = 200  # red in RGB
    cv2.imwrite(str(d / "1.png"), img[..., ::-1])
    cv2.imwrite(str(d / "2.png"), img[..., ::-1])
    dec = video_io.read_clip(str(d))
    assert dec.frames[0].shape == (20, 30, 3) and dec.frames[0][0, 0].tolist() == [200, 0, 0]


def test_video_counts_decoded_frames(tmp_path):
    p = str(tmp_path / "v.mp4")
    write_video(p, 17)
    dec = video_io.read_clip(p)
    assert dec.n == 17 and dec.frames[0].shape == (80, 96, 3) and abs(dec.fps - 25) < 0.1


def test_broken_inputs_give_errors_not_exceptions(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.avi"
    text.write_bytes(b"hello, I am not a video\n" * 100)
    good = str(tmp_path / "good.mp4")
    write_video(good, 30)
    trunc = tmp_path / "trunc.mp4"
    data = open(good, "rb").read()
    trunc.write_bytes(data[: len(data) // 2])
    for p in (empty, text):
        dec = video_io.read_clip(str(p))
        assert dec.n == 0 and dec.error
    dec = video_io.read_clip(str(trunc))  # mp4 with the index at the end: nothing, or a prefix
    assert dec.n < 30 and (dec.n > 0 or dec.error)
    assert video_io.read_clip(str(tmp_path / "missing.mp4")).error == "file not found"
    # a folder with a corrupt image keeps the rest
    d = tmp_path / "seq"
    write_frames(str(d), 5)
    (d / "f3.png").write_bytes(b"garbage")
    dec = video_io.read_clip(str(d))
    assert dec.n == 4 and dec.kept == [0, 1, 3, 4] and "1 of 5" in dec.error


def test_content_hash_finds_copies(tmp_path):
    a = str(tmp_path / "a.mp4")
    write_video(a, 5)
    b = str(tmp_path / "sub" / "b.mp4")
    os.makedirs(os.path.dirname(b))
    shutil.copy(a, b)
    c = str(tmp_path / "c.mp4")
    write_video(c, 5, shift=1)
    assert video_io.content_hash(a) == video_io.content_hash(b) != video_io.content_hash(c)


def test_one_colour_mode_per_folder(tmp_path):
    d = tmp_path / "mixed"
    write_frames(str(d), 2, gray=True)
    cv2.imwrite(str(d / "f3.png"), photo((80, 64))[..., ::-1])  # a colour frame in a gray sequence
    dec = video_io.read_clip(str(d))
    assert dec.n == 3 and all(f.ndim == 2 for f in dec.frames)


def test_decoded_frames_stop_at_the_memory_guard(tmp_path):
    """Fuzz pass: --max-frames counts frames, not pixels; a clip of huge frames stops at a byte budget and says
    so (the row keeps what decoded) instead of filling memory."""
    from ckpp_tools import video_io
    from prepare_helpers import write_frames, write_video

    write_frames(str(tmp_path / "f"), 10, size=(64, 64), gray=True)
    dec = video_io.read_clip(str(tmp_path / "f"), max_bytes=5 * 64 * 64)
    assert dec.n == 5 and "memory guard" in dec.error and "64x64" in dec.error, (dec.n, dec.error)
    write_video(str(tmp_path / "v.mp4"), 10, size=(64, 48))
    dec = video_io.read_clip(str(tmp_path / "v.mp4"), max_bytes=3 * 64 * 48 * 3)
    assert dec.n == 3 and "memory guard" in dec.error, (dec.n, dec.error)
    assert video_io.read_clip(str(tmp_path / "v.mp4")).n == 10


def test_sideways_phone_frames_and_videos_come_out_upright(tmp_path):
    """Phones store portrait JPEGs and videos sideways and say so in metadata (EXIF orientation; the
    container's display matrix). A frame folder honours EXIF (OpenCV's UNCHANGED read ignores it); OpenCV's
    video reader applies the display matrix itself. Either way the clip is decoded as it is shown."""
    import io
    import subprocess

    import imageio_ffmpeg
    from PIL import Image

    up = photo((96, 128))                                    # portrait: 96 wide, 128 high
    folder = tmp_path / "phone_burst"
    folder.mkdir()
    for t in range(3):
        ex = Image.Exif()
        ex[0x0112] = 6                                       # "rotate 90 clockwise to show"
        b = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(np.rot90(up, 1))).save(b, "JPEG", quality=95, exif=ex.tobytes())
        (folder / f"IMG_{t:04d}.jpg").write_bytes(b.getvalue())
    dec = video_io.read_clip(str(folder))
    assert dec.n == 3 and dec.frames[0].shape == (128, 96, 3)
    assert np.abs(dec.frames[0].astype(float) - up).mean() < 4.0

    plain = str(tmp_path / "plain.mp4")
    write_video(plain, 4, size=(128, 96))                    # stored landscape
    tagged = str(tmp_path / "tagged.mp4")
    r = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", "90",
                        "-i", plain, "-c", "copy", tagged], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    a, b = video_io.read_clip(plain), video_io.read_clip(tagged)
    assert a.frames[0].shape == (96, 128, 3) and b.frames[0].shape == (128, 96, 3)
    assert np.array_equal(np.rot90(a.frames[0], 1), b.frames[0]) or \
        np.abs(np.rot90(a.frames[0], 1).astype(float) - b.frames[0]).mean() < 1.0
