"""Quality measures: similarity fit, head motion (rigid vs expression, roll, yaw), expression trim, blur score."""
import sys
import os

import cv2
import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from _synth_clips import base_face, expression_field, intensity_curve  # noqa: E402

from ckpp_tools import quality  # noqa: E402


def _stack(n=30, shift_iod=0.0, roll_deg=0.0, scale=1.0, expr=None, jitter=0.0, seed=0, yaw_deg=0.0):
    """(n,68,2) landmark stack: the astronaut's shape, expression ramp, rigid motion growing over the clip."""
    _, lm0 = base_face()
    d = quality.iod(lm0)
    field = expression_field(lm0, expr) if expr else np.zeros((68, 2))
    inten = intensity_curve(n // 3, n // 3, n - 2 * (n // 3))
    c = lm0.mean(0)
    rng = np.random.default_rng(seed)
    # pseudo depth for yaw (IOD units, adult averages): nose in front of the eyes, outline behind
    z = np.zeros(68)
    z[[27, 28, 29, 30]] = np.array([0.1, 0.2, 0.3, 0.4]) * d
    z[31:36] = 0.3 * d
    z[[36, 45]] = -0.1 * d
    z[0:17] = -0.5 * d
    out = []
    for t in range(n):
        a = t / (n - 1)
        p = lm0 + field * inten[t] - c
        th = np.radians(yaw_deg * a)
        p = np.stack([p[:, 0] * np.cos(th) + z * np.sin(th), p[:, 1]], 1)
        r = np.radians(roll_deg * a)
        rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
        p = (1 + (scale - 1) * a) * p @ rot.T + c + (shift_iod * d * a, 0)
        out.append(p + rng.normal(0, jitter, p.shape))
    return np.array(out), inten


def test_similarity_recovers_transform():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(20, 2)) * 50
    th = np.radians(17)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    dst = 1.3 * src @ rot.T + (5, -7)
    s, r, t = quality.similarity(src, dst)
    assert s == pytest.approx(1.3, rel=1e-6)
    assert np.allclose(r, rot, atol=1e-6) and np.allclose(t, (5, -7), atol=1e-6)


@pytest.mark.parametrize("expr", ["smile", "surprise"])
def test_expression_is_not_head_motion(expr):
    lm, _ = _stack(expr=expr, jitter=0.8)
    hm = quality.head_motion(lm)
    assert hm.displacement < 0.1 and hm.roll < 2 and hm.yaw < 3, hm


def test_mild_drift_accepted_clear_motion_rejected():
    drift = quality.head_motion(_stack(shift_iod=0.2, roll_deg=3, scale=1.05, expr="smile", jitter=0.8)[0])
    assert drift.displacement < quality.HEAD_MOTION_THRESHOLD and drift.roll < quality.HEAD_ROTATION_THRESHOLD
    slide = quality.head_motion(_stack(shift_iod=0.5, expr="smile", jitter=0.8)[0])
    assert slide.displacement > quality.HEAD_MOTION_THRESHOLD
    roll = quality.head_motion(_stack(roll_deg=10, expr="smile", jitter=0.8)[0])
    assert roll.roll > quality.HEAD_ROTATION_THRESHOLD
    assert roll.roll == pytest.approx(10, abs=1.5)


def test_yaw_is_caught_and_small_yaw_is_not():
    assert quality.head_motion(_stack(yaw_deg=10, jitter=0.8)[0]).yaw > quality.HEAD_YAW_THRESHOLD
    assert quality.head_motion(_stack(yaw_deg=3, jitter=0.8)[0]).yaw < quality.HEAD_YAW_THRESHOLD
    # expressions do not read as a turn
    assert quality.head_motion(_stack(expr="smile", jitter=0.8)[0]).yaw < 3


@pytest.mark.parametrize("n_rise", [6, 10, 20])
@pytest.mark.parametrize("jitter", [0.0, 1.0])
def test_trim_soft_ramp_hits_targets(n_rise, jitter):
    for seed in range(3):
        _, lm0 = base_face()
        n_pre, n_tail = 10, 10
        inten = intensity_curve(n_pre, n_rise, n_tail)
        field = expression_field(lm0, "smile")
        rng = np.random.default_rng(seed)
        lm = np.array([lm0 + field * a + rng.normal(0, jitter, (68, 2)) for a in inten])
        tr = quality.find_trim(quality.expression_intensity(lm))
        assert tr.found, tr.detail
        assert inten[tr.onset] <= 0.10 and tr.onset >= n_pre - 1 - 3, (tr, inten[tr.onset])
        assert inten[tr.peak] >= 0.90 and tr.peak <= n_pre + n_rise - 1 + 3, (tr, inten[tr.peak])


def test_jitter_alone_is_no_expression():
    _, lm0 = base_face()
    for seed in range(5):
        rng = np.random.default_rng(seed)
        lm = lm0 + rng.normal(0, 1.2, (40, 68, 2))
        tr = quality.find_trim(quality.expression_intensity(lm))
        assert not tr.found, tr


def test_blur_score_separates_and_is_invariant():
    img, lm = base_face()
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    sharp = quality.blur_score(gray, lm)
    assert quality.blur_score(img, lm) == pytest.approx(sharp, rel=0.02)  # colour == gray
    assert quality.blur_score((gray * 0.5 + 40).astype(np.uint8), lm) == pytest.approx(sharp, rel=0.1)  # contrast
    big = cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    assert quality.blur_score(big, lm * 2 + 0.5) > quality.BLUR_THRESHOLD  # upscaled sharp photo is still sharp
    assert sharp > 2 * quality.BLUR_THRESHOLD
    blurred = cv2.GaussianBlur(gray, (0, 0), 3)
    assert quality.blur_score(blurred, lm) < quality.BLUR_THRESHOLD


def _stuck_then_snap(lead, seed=0):
    """A smile whose mouth corners dlib holds while the rest of the face starts moving (`lead` frames), then
    snaps in one frame -- or, with lead=0, a pure one-frame flip on a still face."""
    _, lm0 = base_face()
    field = expression_field(lm0, "smile")
    rng = np.random.default_rng(seed)
    n, snap = 36, 18
    out = []
    for t in range(n):
        p = lm0.copy()
        if t >= snap:
            p = p + field
        elif lead and t >= snap - lead:
            # the brows and eyes creep (a small part of the field, in another direction) before the snap
            p[17:27, 1] += 0.02 * quality.iod(lm0) * (t - (snap - lead) + 1)
        out.append(p + rng.normal(0, 0.3, p.shape))
    return np.array(out), snap


def test_snap_after_a_lead_in_is_an_expression_but_a_bare_flip_is_not():
    lm, snap = _stuck_then_snap(lead=5)
    tr, _ = quality.trim_landmarks(lm)
    assert tr.found and snap - 6 <= tr.onset <= snap - 3 and tr.peak >= snap, tr
    lm, _ = _stuck_then_snap(lead=0)
    tr, _ = quality.trim_landmarks(lm)
    assert not tr.found and "jump" in tr.detail, tr


def test_yaw_needs_persistence():
    lm, _ = _stack(jitter=0.5)
    _, lm0 = base_face()
    d = quality.iod(lm0)
    glitch = lm.copy()
    glitch[14:16, 27:36, 0] += 0.15 * d   # nose points jump sideways for two frames (a flip between fits)
    glitch[14:16, [15, 16], 0] += 0.1 * d
    assert quality.head_motion(glitch).yaw < 3
    turn = _stack(yaw_deg=12, jitter=0.5)[0]
    assert quality.head_motion(turn).yaw > quality.HEAD_YAW_THRESHOLD


def test_numpy_temporal_filters_equal_scipys_to_the_bit():
    """quality.py's median / Gaussian filters (filters1d, numpy) give scipy.ndimage's results exactly, for the
    shapes, sizes and dtypes it uses, short clips included."""
    import scipy.ndimage as ndi

    from ckpp_tools import filters1d

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 5, 9, 40):
        for shape in ((n,), (n, 6), (n, 68, 2)):
            for dt in (np.float64, np.float32):
                x = (rng.normal(size=shape) * 10).astype(dt)
                for k in (3, 5):
                    size = k if len(shape) == 1 else (k,) + (1,) * (len(shape) - 1)
                    a, b = ndi.median_filter(x, size=size, mode="nearest"), filters1d.median_filter(x, size=size, mode="nearest")
                    assert a.dtype == b.dtype and np.array_equal(a, b), (shape, dt, k)
                a = ndi.gaussian_filter1d(x, 1.0, axis=0, mode="nearest")
                b = filters1d.gaussian_filter1d(x, 1.0, axis=0, mode="nearest")
                assert a.dtype == b.dtype and np.array_equal(a, b), (shape, dt)
    with pytest.raises(ValueError):
        filters1d.median_filter(np.zeros((4, 3)), size=(3, 3))


def test_long_clip_ramp_fit_is_the_dense_fit_in_linear_memory():
    """fit_ramp on long clips (sparse grid) finds the dense grid's fit; a 3,000-frame curve (the default
    --max-frames) fits without the ~9 GB the dense grid would need."""
    from ckpp_tools import quality as q

    rng = np.random.default_rng(3)
    n = 150
    t = np.arange(n)
    x = 0.3 * q._smoothstep((t - 50.3) / 17.0) + rng.normal(0, 0.02, n)
    x[[7, 90]] += 0.4  # landmark glitches the re-weighting must ignore
    old = q.DENSE_FIT_MAX
    try:
        q.DENSE_FIT_MAX = 10 ** 9
        dense = q.fit_ramp(x)
        q.DENSE_FIT_MAX = 0
        sparse = q.fit_ramp(x)
    finally:
        q.DENSE_FIT_MAX = old
    assert dense[:2] == sparse[:2] and np.allclose(dense, sparse, rtol=1e-9, atol=1e-12)
    assert abs(dense[0] - 50.3) < 2 and abs(dense[1] - 67.3) < 2
    n = 3000
    t = np.arange(n)
    t0, t1, _, a, _ = q.fit_ramp(0.3 * q._smoothstep((t - 1000.0) / 40.0) + rng.normal(0, 0.02, n))
    assert abs(t0 - 1000) < 2 and abs(t1 - 1040) < 2 and abs(a - 0.3) < 0.03
