"""The public Python API (models.pipeline, `from ckpp import ExpressionPipeline`): photos in any form, mixes,
the face found, the fast preview, the CLI's errors, and docs/api.md's snippet run as written."""
import os
import re

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image

from ckpp import ExpressionPipeline, list_models
from ckpp_tools.errors import CkppError, UsageError
from tests._tiny_run import make_joint_run

torch.set_num_threads(1)
HOPPER = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "api.md")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    run = make_joint_run(tmp_path_factory.mktemp("api") / "runs" / "ours-happy+surprise")
    return ExpressionPipeline.from_pretrained(run, device="cpu")


def test_a_photo_in_any_form_gives_the_same_video(pipe):
    out = pipe(HOPPER, {"happy": 0.7, "surprise": 0.3}, num_frames=5, start="as-is")
    # the shipped weights move the photo's own face at its size in the photo (at least 256 px)
    assert out.frames.shape[0] == 5 and out.frames.shape[1] == out.frames.shape[2] >= 256
    assert out.frames.shape[3] == 3 and out.frames.dtype == np.uint8
    assert out.weights == {"happy": 0.7, "surprise": 0.3}
    assert np.abs(out.peak.astype(int) - out.first).mean() > 1.0            # the mix moves the face
    pil = Image.open(HOPPER)
    arr = np.asarray(pil.convert("RGB"))
    for photo in (pil, arr, arr.astype(np.float32) / 255.0, open(HOPPER, "rb").read()):
        again = pipe(photo, {"happy": 0.7, "surprise": 0.3}, num_frames=5, start="as-is")
        assert np.array_equal(again.frames, out.frames), type(photo)
    # the face found: its landmarks inside the crop box, the box inside the photo's neighbourhood
    f = out.face
    assert f.landmarks.shape == (68, 2) and f.start == "as-is" and f.corners.shape == (4, 2)
    x0, y0, x1, y1 = f.box
    assert (f.landmarks >= [x0, y0]).all() and (f.landmarks <= [x1, y1]).all()
    assert 0 < x1 - x0 < arr.shape[1] * 1.2


def test_preview_is_the_videos_peak_and_caches_the_face(pipe, monkeypatch):
    out = pipe(HOPPER, {"happy": 0.6}, num_frames=4)
    assert np.array_equal(pipe.preview(HOPPER, {"happy": 0.6}), out.peak)
    import ckpp_tools.face_geometry as fg

    calls = []
    real = fg.face_crop
    monkeypatch.setattr(fg, "face_crop", lambda *a, **k: calls.append(1) or real(*a, **k))
    for w in (0.1, 0.5, 0.9):
        pipe.preview(HOPPER, {"surprise": w})
    assert calls == []                               # cached: the face is not looked for again
    zero = pipe.preview(HOPPER, {"happy": 0.0})
    assert np.array_equal(zero, out.first)           # a = 0 reconstructs frame 0
    pasted = pipe.preview(HOPPER, {"happy": 0.6}, paste_back=True)
    assert pasted.shape == np.asarray(Image.open(HOPPER)).shape and len(calls) == 1


def test_save_and_paste_back(pipe, tmp_path):
    out = pipe(HOPPER, {"surprise": 1.0}, num_frames=3, paste_back=True, fps=4)
    assert out.frames.shape[1:] == np.asarray(Image.open(HOPPER)).shape
    import imageio.v3 as iio

    assert iio.imread(out.save(tmp_path / "a.gif")).shape[0] == 3
    assert iio.imread(out.save(tmp_path / "a.mp4")).shape[0] == 3
    with pytest.raises(UsageError, match="name the output .mp4 or .gif"):
        out.save(tmp_path / "a.avi")


def test_errors_are_the_clis(pipe, tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    with pytest.raises(CkppError, match=r"junk.jpg: not a decodable image"):
        pipe(junk, {"happy": 1.0})
    with pytest.raises(CkppError, match=r"upload.jpg: not a decodable image"):
        pipe.preview(str(junk), {"happy": 1.0}, where="upload.jpg")
    with pytest.raises(CkppError, match="no face found in the photo"):
        pipe(np.full((120, 160, 3), 200, np.uint8), {"happy": 1.0})
    with pytest.raises(UsageError, match="'anger' is not one this model was trained on") as e:
        pipe(HOPPER, {"anger": 1.0})
    assert "happy, surprise" in str(e.value)
    with pytest.raises(UsageError, match=r"outside \[0, 1\]"):
        pipe.preview(HOPPER, {"happy": 1.5})
    with pytest.raises(UsageError, match="not supported"):
        pipe(HOPPER, {"happy": 1.0}, colour="blue")
    for bad, msg in ((np.zeros((4, 5, 6)), "not a photo"), (np.zeros((64, 64, 3)) - 1, "float 0-1"),
                     ([1, 2, 3], "a list is not a photo"), (np.zeros((8, 8, 3), np.uint8), "only 8x8 pixels")):
        with pytest.raises(CkppError, match=msg):
            pipe(bad, "happy")
    with pytest.raises(CkppError, match="no such checkpoint file or run folder"):
        ExpressionPipeline.from_pretrained(tmp_path / "nope")


def test_list_models(pipe, tmp_path):
    runs = os.path.dirname(pipe.meta["run_dir"])
    found = list_models(runs)
    from models.pretrained import available

    shipped = [f"pretrained:{n}" for n in available()]
    assert "pretrained:ours-surprise" in shipped
    assert found[:len(shipped)] == shipped and pipe.meta["run_dir"] in found
    assert list_models(tmp_path / "none") == shipped


def test_docs_api_snippet_runs(tmp_path, monkeypatch):
    """docs/api.md's first python block, run as written (shipped weights, skimage's astronaut)."""
    text = open(DOC).read()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/api.md", "exec"), {})
    assert (tmp_path / "astronaut-surprise.gif").stat().st_size > 0


def test_extra_keywords_reach_generate_video_only_where_it_takes_them(pipe, monkeypatch):
    """size= / face= (other branches' generate_video) pass through by signature; before they exist: an error."""
    import inspect

    import models.generate as gen

    real, seen = gen.generate_video, []

    def with_face(family, photo, weights, n_frames=16, *, face=None, **kw):
        seen.append(face)
        return real(family, photo, weights, n_frames, **kw)

    if "face" not in inspect.signature(real).parameters:
        with pytest.raises(UsageError, match="face= is not supported"):
            pipe(HOPPER, "happy", 2, face=2)
    monkeypatch.setattr(gen, "generate_video", with_face)
    pipe(HOPPER, "happy", 2, face=2)
    pipe(HOPPER, "happy", 2)                        # None is not passed on
    assert seen == [2, None]
