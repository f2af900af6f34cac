"""Neutral base faces (neutral.py): a smiling photo's smile is estimated and taken back before sampling."""
from __future__ import annotations

import numpy as np
import pytest

from ckpp_tools.expressions import displace
from ckpp_tools.face_measures import measure
from ckpp_tools.faces import base_photo
from ckpp_tools.neutral import NEUTRAL, SMILE, estimate_smile, neutralise

#: mouth width / IOD of neutral faces: 5th-95th percentile over 72 NBA headshots labelled neutral by eye
NEUTRAL_WIDTH = (0.54, 0.685)


@pytest.fixture(scope="module")
def hopper():
    return base_photo("grace_hopper")[1]


def test_synthetic_smile_is_estimated_and_taken_back(hopper):
    neutral = displace(hopper, neutralise(hopper)[0])
    assert estimate_smile(neutral) < 0.05
    for a in (0.5, 0.9):
        smiling = displace(neutral, SMILE * a)   # the smile the fit measures against (AU 6+12+25)
        assert measure(smiling)["mouth_width"] > NEUTRAL_WIDTH[1]
        assert estimate_smile(smiling) == pytest.approx(a, abs=0.1)
        field, info = neutralise(smiling)
        back = measure(displace(smiling, field))["mouth_width"]
        assert NEUTRAL_WIDTH[0] <= back <= NEUTRAL_WIDTH[1]
        assert abs(back - NEUTRAL["mouth_width"]) < abs(measure(smiling)["mouth_width"] - NEUTRAL["mouth_width"]) / 3


def test_astronaut_open_smile_relaxed_without_closing_the_lips():
    lm = base_photo("astronaut")[1]
    before = measure(lm)
    field, info = neutralise(lm)
    after = measure(displace(lm, field))
    assert info["happy"] > 0.4 and info["teeth"]          # she smiles with her teeth showing
    assert before["mouth_width"] > NEUTRAL_WIDTH[1] and NEUTRAL_WIDTH[0] <= after["mouth_width"] <= NEUTRAL_WIDTH[1]
    assert np.all(field[[57, 66, 65, 67]] == 0.0)           # the lower lip stays where it is
    assert after["mouth_open"] > 0.03                       # the teeth are not covered


def test_a_neutral_face_is_left_alone(hopper):
    neutral = displace(hopper, neutralise(hopper)[0])
    field, info = neutralise(neutral)
    assert np.abs(field).max() < 0.01


def test_neutral_photo_takes_the_astronaut_smile_back_and_shuts_her_lips():
    """The test-time neutral start (generate/benchmark --start neutral): the photo itself is warped, the
    returned landmarks are where dlib finds the face afterwards, mouth width in the neutral range, lips shut."""
    from ckpp_tools.faces import base_photo as _bp
    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker
    from ckpp_tools.neutral import neutral_photo

    img, lm = _bp("astronaut")[:2]
    out, target, info = neutral_photo(img, lm)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert info["teeth"] and info["mouth_open"] > 0.03 and info["mouth_open_after"] < 0.005
    assert NEUTRAL_WIDTH[0] <= info["mouth_width_after"] <= NEUTRAL_WIDTH[1]
    found = DlibLandmarker.shared().detect_landmarks(out)
    assert found is not None
    m = measure(found)
    assert m["mouth_open"] < before_open(lm) / 2                 # dlib sees the lips (nearly) shut
    assert NEUTRAL_WIDTH[0] - 0.02 <= m["mouth_width"] <= NEUTRAL_WIDTH[1]
    iod = np.linalg.norm(lm[45] - lm[36])
    assert np.median(np.linalg.norm(found - target, axis=1)) / iod < 0.05
    ys, xs = np.nonzero(np.abs(out.astype(int) - img).max(2) > 2)
    lo, hi = lm.min(0) - iod, lm.max(0) + iod
    assert len(xs) and xs.min() >= lo[0] and xs.max() <= hi[0] and ys.min() >= lo[1] and ys.max() <= hi[1]   # only the face moves


def before_open(lm):
    return measure(lm)["mouth_open"]


def test_neutral_photo_leaves_a_neutral_face_nearly_alone(hopper):
    from ckpp_tools.faces import base_photo as _bp
    from ckpp_tools.neutral import neutral_photo

    img, lm = _bp("grace_hopper")[:2]
    neutral = displace(lm, neutralise(lm)[0])
    _, target, info = neutral_photo(img, neutral)
    assert np.abs(target - neutral).max() / np.linalg.norm(lm[45] - lm[36]) < 0.02


def test_neutral_photo_of_a_huge_face_is_warped_in_bands_with_the_same_pixels(monkeypatch):
    """A face filling a 100-MP photo would need ~2 GB of remap tables at once: PiecewiseAffine remaps
    band by band above WARP_BAND_PIXELS. Banded and whole-box warps must give the same bytes."""
    from ckpp_tools import expressions as ex
    from ckpp_tools.faces import base_photo as _bp
    from ckpp_tools.neutral import neutral_photo

    img, lm = _bp("astronaut")[:2]
    whole = neutral_photo(img, lm)[0]
    monkeypatch.setattr(ex, "WARP_BAND_PIXELS", 5_000)    # ~30 rows a band over the astronaut's face box
    banded = neutral_photo(img, lm)[0]
    assert np.array_equal(whole, banded)
    assert not np.array_equal(whole, img)
