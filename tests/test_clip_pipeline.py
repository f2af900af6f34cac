"""process_clip end to end on small synthetic clips (astronaut photo warped along a smile / surprise)."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from _synth_clips import make_clip  # noqa: E402

from ckpp_tools.clip_pipeline import ClipOptions, process_clip  # noqa: E402
from ckpp_tools.masks import region_mask  # noqa: E402
from ckpp_tools.schema import MOUTH, REASONS  # noqa: E402

CROP = (100, 0, 356, 300)
S = 96


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def _check_trim(res, truth):
    inten = truth["intensity"]
    assert inten[res.onset] <= 0.10 and res.onset >= truth["onset"] - 3, (res.onset, truth["onset"])
    assert inten[res.peak] >= 0.90 and res.peak <= truth["peak"] + 3, (res.peak, truth["peak"])


@pytest.mark.parametrize("kind,kw", [("smile", {"gray": True, "noise": 3.0}), ("surprise", {}),
                                     ("smile", {"shift_iod": 0.2, "roll_deg": 2.0})])
def test_accepted_clip_contract_and_accuracy(kind, kw):
    frames, truth = make_clip(kind, crop=CROP, **kw)
    res = process_clip(frames, options=ClipOptions(size=S))
    assert res.status == "accepted", res.detail
    _check_trim(res, truth)
    T = res.peak - res.onset + 1
    assert res.frames.shape == (T, S, S, 3) and res.frames.dtype == np.uint8
    assert res.landmarks.shape == (T, 68, 2) and res.landmarks.dtype == np.float32
    assert res.mouth_mask.shape == (T, S, S) and res.mouth_mask.dtype == np.uint8 and res.mouth_mask.max() == 1
    assert res.degree.dtype == np.float32 and res.degree[0] == 0 and res.degree[-1] == 1
    assert np.all(np.diff(res.degree) > 0)
    assert res.source_index.dtype == np.int32 and list(res.source_index) == list(range(res.onset, res.peak + 1))
    x0, y0, x1, y1 = res.crop_box
    assert x1 - x0 == pytest.approx(y1 - y0)
    assert res.original_size == (frames[0].shape[1], frames[0].shape[0])
    if kw.get("gray"):
        assert np.array_equal(res.frames[..., 0], res.frames[..., 2])
    # landmarks in stored pixels match the truth mapped through the crop box
    s = S / (x1 - x0)
    tl = (truth["landmarks"][res.onset:res.peak + 1] - (x0, y0)) * s
    nme = np.linalg.norm(res.landmarks - tl, axis=-1).mean(-1) / (truth["iod"] * s)
    assert np.median(nme) < 0.08
    ious = [_iou(m.astype(bool), region_mask(t, MOUTH, S).astype(bool)) for m, t in zip(res.mouth_mask, tl)]
    # this crude warp opens the jaw without a mouth cavity, which dlib follows only part-way; the accuracy
    # target (>= 0.7) is checked on the sample clips in test_sample_accuracy
    assert np.median(ious) >= (0.6 if kind == "surprise" else 0.7)
    assert res.extra["detector_calls"] <= 2


@pytest.mark.parametrize("kw,reason", [({"blur_sigma": 3.0}, "blurry"), ({"shift_iod": 0.6}, "head_motion"),
                                       ({"roll_deg": 12.0}, "head_motion"), ({"kind": "none"}, "no_expression")])
def test_rejections(kw, reason):
    kw = dict(kw)
    frames, _ = make_clip(kw.pop("kind", "smile"), crop=CROP, **kw)
    res = process_clip(frames, options=ClipOptions(size=S))
    assert res.status == "rejected" and res.reason == reason, (res.reason, res.detail)
    assert res.reason in REASONS and res.detail and res.frames is None


def test_already_trimmed_onset_peak_and_provided_landmarks():
    frames, truth = make_clip("smile", crop=CROP, n_pre=1, n_rise=8, n_tail=1)
    res = process_clip(frames, already_trimmed=True, provided_landmarks=truth["landmarks"], options=ClipOptions(size=S))
    assert res.status == "accepted" and (res.onset, res.peak) == (0, len(frames) - 1)
    assert res.extra["detector_calls"] == 0
    res = process_clip(frames, onset_peak=(2, 7), options=ClipOptions(size=S))
    assert (res.onset, res.peak) == (2, 7) and len(res.frames) == 6
    short = process_clip(frames, onset_peak=(2, 3), options=ClipOptions(size=S))
    assert short.reason == "too_short" and "min-frames" in short.detail
    bad = process_clip(frames, onset_peak=(2, 99), options=ClipOptions(size=S))
    assert bad.reason == "too_short" and "outside" in bad.detail


def test_no_face_and_empty():
    import skimage.data

    assert process_clip([skimage.data.coffee()[:200, :200]] * 5).reason == "no_face"
    assert process_clip([]).reason == "too_short"


def test_face_hidden_by_blur_is_blurry():
    import cv2

    # blurred like the sample's blurred take (IOD/12): here the detector finds no face at all, but finds it once
    # the frame is sharpened (blurred_face.py)
    frames, truth = make_clip("smile", crop=CROP)
    iod = np.linalg.norm(truth["landmarks"][0][36] - truth["landmarks"][0][45])
    res = process_clip([cv2.GaussianBlur(f, (0, 0), iod / 12) for f in frames], options=ClipOptions(size=S))
    assert res.reason == "blurry" and "no face found" in res.detail, (res.reason, res.detail)
    assert "a blurred face is there" in res.detail, res.detail


# ---- accuracy on the sample clips (truth.json from `ckpp sample`) ---------------------------------------

def _load_sample_clip(root, rel):
    import glob

    import cv2

    path = os.path.join(root, rel)
    if os.path.isdir(path):  # CK+ sequence + its Landmarks files
        files = sorted(glob.glob(os.path.join(path, "*.png")))
        frames = [cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in files]
        lmdir = path.replace("cohn-kanade-images", "Landmarks")
        prov = np.array([np.loadtxt(os.path.join(lmdir, os.path.basename(f)[:-4] + "_landmarks.txt")) for f in files])
        return frames, prov, True
    cap = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, None, False


def test_sample_accuracy(sample_root):
    from ckpp_tools.sample import load_truth

    truth = load_truth(sample_root)["clips"]
    mine = {"", "blurry", "head_motion", "no_expression", "too_short", "unlabelled"}
    nmes, ious, trims, wrong = [], [], [], []
    for rel, e in truth.items():
        if e["expected_reason"] not in mine:
            continue  # unreadable / unknown_emotion are the driver's
        frames, prov, ck = _load_sample_clip(sample_root, rel)
        res = process_clip(frames, already_trimmed=ck, provided_landmarks=prov, options=ClipOptions(size=128))
        want = "" if e["expected_reason"] == "unlabelled" else e["expected_reason"]
        if res.reason != want:
            wrong.append((rel, want, res.reason, res.detail))
            continue
        if res.status != "accepted":
            continue
        if ck:
            assert (res.onset, res.peak) == (0, len(frames) - 1) and res.extra["detector_calls"] == 0
            continue
        inten = np.asarray(e["intensity"]) / max(e["intensity"])
        trims.append(inten[res.onset] <= 0.10 and inten[res.peak] >= 0.90
                     and e["onset"] - res.onset <= 3 and res.peak - e["peak"] <= 3)
        box = res.crop_box
        s = 128 / (box[2] - box[0])
        tl = (np.asarray(e["landmarks"])[res.onset:res.peak + 1] - box[:2]) * s
        iod = np.linalg.norm(tl[:, 36] - tl[:, 45], axis=1)
        nmes.append(np.median(np.linalg.norm(res.landmarks - tl, axis=-1).mean(-1) / iod))
        ious.append(np.median([_iou(m.astype(bool), region_mask(t, MOUTH, 128).astype(bool))
                               for m, t in zip(res.mouth_mask, tl)]))
    assert not wrong, wrong
    assert len(trims) >= 8
    assert np.median(nmes) <= 0.08 and np.median(ious) >= 0.70, (np.median(nmes), np.median(ious))
    # every trim within the targets (onset <= 10 %, peak >= 90 % of the true intensity, <= 3 frames extra);
    # measured 111 of 114 over small and default samples of seeds 0-2 (docs/prepare-analysis.md)
    assert all(trims), trims


def _title_card(w=960, h=540):
    """A sharp title card over a sky-like gradient: the title sits in the lower third, off the centre."""
    import cv2

    y = np.linspace(0, 1, h)[:, None, None]
    x = np.linspace(0, 1, w)[None, :, None]
    sky = (np.array([90, 150, 235]) * (1 - y) + np.array([200, 225, 250]) * y) * (0.85 + 0.15 * x)
    img = np.ascontiguousarray(sky.astype(np.uint8))
    cv2.putText(img, "THE END", (330, 500), cv2.FONT_HERSHEY_DUPLEX, 2.0, (255, 255, 255), 4, cv2.LINE_AA)
    return img


def test_smooth_scenes_without_a_face_are_no_face_and_a_blurred_face_is_blurry(tmp_path):
    """Issue 11 item 4: a sharp no-face title card video and a folder of uniform grey frames are 'no_face'
    (before: 'blurry', their smooth pictures have little Laplacian energy); a blurred real face stays 'blurry'
    (issue 25: on evidence of a face, tests/test_blurred_face.py)."""
    import cv2
    from click.testing import CliRunner

    from ckpp_tools.cli import main
    from ckpp_tools.reader import open_dataset
    from ckpp_tools.sample import write_mp4

    raw = tmp_path / "raw"
    card = _title_card()
    write_mp4(str(raw / "P001" / "happy_01.mp4"), [card] * 12)
    grey = raw / "P001" / "happy_02"
    grey.mkdir(parents=True)
    for i in range(8):
        cv2.imwrite(str(grey / f"{i:03d}.png"), np.full((480, 640), 128, np.uint8))
    frames, truth = make_clip("smile", crop=CROP)
    iod = np.linalg.norm(truth["landmarks"][0][36] - truth["landmarks"][0][45])
    write_mp4(str(raw / "P001" / "happy_03.mp4"), [cv2.GaussianBlur(f, (0, 0), iod / 12) for f in frames])
    out = tmp_path / "out.h5"
    r = CliRunner().invoke(main, ["prepare", str(raw), str(out), "--size", "64", "--workers", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    rows = {row["source"]: row for row in open_dataset(str(out)).manifest.to_dict("records")}
    assert rows["P001/happy_01.mp4"]["reason"] == "no_face", rows["P001/happy_01.mp4"]
    assert rows["P001/happy_02"]["reason"] == "no_face", rows["P001/happy_02"]
    assert "nor once the frames were sharpened" in rows["P001/happy_02"]["detail"], rows["P001/happy_02"]
    assert rows["P001/happy_03.mp4"]["reason"] == "blurry", rows["P001/happy_03.mp4"]
