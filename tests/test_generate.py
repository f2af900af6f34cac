"""`ckpp generate` and models.generate: a real photo in, a video with the requested frames out; bad inputs."""
import os

import imageio.v3 as iio
import matplotlib
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ckpp_tools.cli import main
from ckpp_tools.crop import crop_box, crop_image
from ckpp_tools.errors import CkppError
from ckpp_tools.landmarks.dlib_backend import DlibLandmarker
from models.checkpoint import load_run
from models.config import load_config
from models.generate import crop_face, generate_video, load_photo, parse_weights, write_video
from models.training_loop import train
from tests.fakes import make_fake_dataset

torch.set_num_threads(1)
HOPPER = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    data = make_fake_dataset(d / "out.h5", emotions=("surprise", "happy"), n_clips=3, T=4, size=36)
    cfg = load_config("tiny").replace(image_size=32, levels=5, base_width=4, max_width=16, d_width=8, batch_size=2,
                                      num_workers=0, max_steps=2, log_every=1, ckpt_every=2, sample_every=2)
    return train(cfg, "ours", ["surprise", "happy"], [data], d / "run", progress=False)["run_dir"]


def test_generate_mp4_from_real_photo(run, tmp_path):
    out = tmp_path / "hopper.mp4"
    res = CliRunner().invoke(main, ["generate", run, HOPPER, "--emotion", "surprise", "--emotion", "happy=0.5",
                                    "--frames", "12", "--fps", "6", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "12 frames" in res.output
    video = iio.imread(out)
    assert video.shape[0] == 12 and video.shape[1] == video.shape[2] == 256
    assert not any(p.name.endswith(".partial.mp4") for p in tmp_path.iterdir())


def test_frames_degrees_and_paste_back(run, tmp_path):
    fam, meta = load_run(run)
    photo = load_photo(HOPPER)
    frames = generate_video(fam, photo, {"surprise": 1.0}, 5, min_side=0)
    assert frames.shape == (5, 32, 32, 3) and frames.dtype == np.uint8
    # frame 0 is f(I, 0): identical to asking for the neutral face alone
    again = generate_video(fam, photo, {"surprise": 0.0}, 3, min_side=0)
    assert np.array_equal(frames[0], again[0]) and np.array_equal(again[0], again[-1])
    pasted = generate_video(fam, photo, {"happy": 0.3}, 3, paste=True)
    assert pasted.shape[1:] == photo.shape and pasted.shape[0] == 3
    gif = write_video(pasted, tmp_path / "p.gif", fps=4)
    assert iio.imread(gif).shape[0] == 3


def test_crop_matches_prepare(tmp_path):
    photo = load_photo(HOPPER)
    crop, box = crop_face(photo, size=96)
    lm = DlibLandmarker.shared().detect_landmarks(photo, max_side=640)
    assert np.allclose(box, crop_box(lm), atol=1e-6)
    assert np.array_equal(crop, crop_image(photo, crop_box(lm), 96))


def test_bad_inputs(run, tmp_path):
    r = CliRunner()
    flat = tmp_path / "wall.png"
    iio.imwrite(flat, np.full((120, 160, 3), 200, np.uint8))
    res = r.invoke(main, ["generate", run, str(flat), "--emotion", "surprise", "-o", str(tmp_path / "x.mp4")])
    assert res.exit_code != 0 and "no face found in the photo" in res.output and "wall.png" in res.output
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    res = r.invoke(main, ["generate", run, str(junk), "--emotion", "surprise"])
    assert res.exit_code != 0 and "not a decodable image" in res.output and "junk.jpg" in res.output
    res = r.invoke(main, ["generate", run, HOPPER, "--emotion", "anger"])
    assert res.exit_code != 0 and "'anger' is not one this model was trained on" in res.output
    assert "surprise, happy" in res.output
    for bad, msg in (("surprise=abc", "is not a number"), ("surprise=1.5", "outside [0, 1]"), ("surprise=nan", "outside")):
        res = r.invoke(main, ["generate", run, HOPPER, "--emotion", bad])
        assert res.exit_code != 0 and msg in res.output, res.output
    res = r.invoke(main, ["generate", str(tmp_path / "nope"), HOPPER, "--emotion", "surprise"])
    assert res.exit_code != 0 and "no such checkpoint file or run folder" in res.output
    res = r.invoke(main, ["generate", run, HOPPER, "--emotion", "surprise", "-o", str(tmp_path / "x.avi")])
    assert res.exit_code != 0 and "name the output .mp4 or .gif" in res.output
    assert parse_weights(["Surprised", "happy=0.25"], ["surprise", "happy"]) == {"surprise": 1.0, "happy": 0.25}
    with pytest.raises(CkppError, match="at least 2"):
        generate_video(load_run(run)[0], load_photo(HOPPER), {"surprise": 1.0}, 1)


def test_a_marginal_detection_never_wins_over_the_face(tmp_path):
    """A greyscale JPEG of the astronaut: HOG finds her face (score ~1.5) and a larger patch of her suit (~0.01);
    'largest face first' animated the suit. Marginal boxes are dropped when a confident one exists."""
    import cv2
    import skimage.data

    from models.generate import face_box

    gray = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    path = tmp_path / "gray.jpg"
    iio.imwrite(path, gray)
    photo = load_photo(path)
    lm = DlibLandmarker.shared()
    from ckpp_tools.landmarks.dlib_backend import _to_gray_u8

    rects, scores, _ = lm.detector.run(_to_gray_u8(photo), 0, 0.0)
    assert len(rects) >= 2 and min(scores) < 0.1            # the case still exists with this dlib
    boxes = lm.detect(photo, upsample=0, max_side=640)
    assert len(boxes) == 1
    box, pts = face_box(photo)
    x0, y0, x1, y1 = boxes[0]
    assert 150 < (x0 + x1) / 2 < 300 and 60 < (y0 + y1) / 2 < 200    # her face, not her suit (y ~ 380)
    assert x0 <= pts[30, 0] <= x1 and y0 <= pts[30, 1] <= y1


def test_a_small_photo_is_looked_at_closer():
    """A 128-px photo whose face is ~25 px: found at upsample 2, as the photo check finds it."""
    import cv2
    import skimage.data

    from models.generate import face_box

    small = cv2.resize(np.ascontiguousarray(skimage.data.astronaut()), (128, 128), interpolation=cv2.INTER_AREA)
    box, pts = face_box(small)
    assert 30 < pts[30, 0] < 80 and 15 < pts[30, 1] < 50


def test_several_faces_are_listed_and_face_picks_another(run, tmp_path):
    """A photo with three real faces (tests.fakes.group_photo): generate animates the central, whole one, says
    how many it found and where, and --face N takes another; an out-of-range --face lists the faces."""
    from ckpp_tools import face_pick
    from tests.fakes import group_photo

    photo, _ = group_photo()
    path = tmp_path / "group.png"
    iio.imwrite(path, photo)
    faces = face_pick.faces(load_photo(path))
    r = CliRunner()
    res = r.invoke(main, ["generate", run, str(path), "--emotion", "surprise", "--frames", "3", "-o", str(tmp_path / "a.gif")])
    assert res.exit_code == 0, res.output
    assert f"3 faces found; animating face 1 at {faces[0].box_text()} (" in res.output
    assert "central, whole" in res.output
    assert f"--face 2 for the one at {faces[1].box_text()}" in res.output
    assert f"--face 3 for the one at {faces[2].box_text()}" in res.output
    res = r.invoke(main, ["generate", run, str(path), "--emotion", "surprise", "--frames", "3", "--face", "2",
                          "-o", str(tmp_path / "b.gif")])
    assert res.exit_code == 0, res.output
    assert f"animating face 2 at {faces[1].box_text()}" in res.output
    assert f"--face 1 for the one at {faces[0].box_text()}" in res.output
    assert not np.array_equal(iio.imread(tmp_path / "a.gif", index=0), iio.imread(tmp_path / "b.gif", index=0))
    res = r.invoke(main, ["generate", run, str(path), "--emotion", "surprise", "--face", "7", "-o", str(tmp_path / "c.gif")])
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert "--face: " in res.output and "group.png has 3 faces; there is no face 7" in res.output
    assert f"1 at {faces[0].box_text()}" in res.output and f"3 at {faces[2].box_text()}" in res.output
    assert not (tmp_path / "c.gif").exists()
    # the Python API: report lists the faces, face= picks one
    found: dict = {}
    generate_video(load_run(run)[0], photo, {"surprise": 1.0}, 2, report=found, face=3)
    assert found["face"].rank == 3 and len(found["faces"]) == 3
    # one face: no note
    res = r.invoke(main, ["generate", run, HOPPER, "--emotion", "surprise", "--frames", "2", "-o", str(tmp_path / "h.gif")])
    assert res.exit_code == 0 and "faces found" not in res.output
