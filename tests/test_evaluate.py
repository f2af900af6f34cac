"""Benchmark metrics on hand-made inputs whose answers are known."""
import math

import numpy as np
import pytest

from models import evaluate as ev


def face(seed=0):
    """68 landmarks with eyes 40 px apart (centres at x=80 and x=120)."""
    rng = np.random.default_rng(seed)
    lm = rng.uniform(60, 140, size=(68, 2))
    lm[36:42] = [100 - 20, 90] + rng.normal(0, 2, size=(6, 2))
    lm[42:48] = [100 + 20, 90] + rng.normal(0, 2, size=(6, 2))
    lm[36:42] -= lm[36:42].mean(0) - [80, 90]
    lm[42:48] -= lm[42:48].mean(0) - [120, 90]
    return lm


def moving_face(n, amounts):
    """n frames; every point shifted right by amounts[t] * inter-ocular distance (40 px)."""
    base = face()
    return np.stack([base + [40.0 * a, 0.0] for a in amounts[:n]])


def video(n=6, size=16, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_interocular_and_curve_units():
    lm = face()
    assert ev.interocular(lm) == pytest.approx(40.0)
    amounts = np.linspace(0, 1, 5)
    curve = ev.landmark_curve(moving_face(5, amounts))
    np.testing.assert_allclose(curve, amounts, atol=1e-12)
    # a scaled-up copy of the same clip gives the same curve: normalised by the inter-ocular distance
    np.testing.assert_allclose(ev.landmark_curve(moving_face(5, amounts) * 3.0), amounts, atol=1e-12)


def test_curve_nan_for_undetected_frames():
    lms = moving_face(4, [0, 0.2, 0.4, 0.6])
    lms[2] = np.nan
    curve = ev.landmark_curve(lms)
    assert np.isnan(curve[2]) and curve[3] == pytest.approx(0.6)
    np.testing.assert_array_equal(ev.detected(lms), [True, True, False, True])


def test_identical_videos_zero_gaps():
    t = np.linspace(0, 1, 6)
    curve = ev.landmark_curve(moving_face(6, t))
    assert ev.curve_gap(t, curve, t, curve) == 0.0
    v = video()
    assert np.all(ev.l1(v, v) == 0)
    assert np.all(np.isinf(ev.psnr(v, v)))
    np.testing.assert_allclose(ev.ssim(v, v), 1.0)
    lms = moving_face(6, t)
    np.testing.assert_allclose(ev.nme(lms, lms), 0.0)


def test_gap_against_gt_sampled_at_other_times():
    gt_t = np.linspace(0, 1, 21)
    gt = gt_t.copy()  # linear rise to 1 inter-ocular distance
    model_t = np.linspace(0, 1, 10)
    assert ev.curve_gap(model_t, model_t, gt_t, gt) == pytest.approx(0.0, abs=1e-12)
    assert ev.curve_gap(model_t, np.zeros(10), gt_t, gt) == pytest.approx(0.5)  # frozen face: mean of the rise


def test_reversed_video_negative_trend_and_drop():
    t = np.linspace(0, 1, 8)
    rising = ev.landmark_curve(moving_face(8, t))
    falling = rising[::-1]
    assert ev.trend(rising) == pytest.approx(1.0)
    assert ev.trend(falling) == pytest.approx(-1.0)
    assert ev.largest_drop(rising) == 0.0
    assert ev.largest_drop(falling) == pytest.approx(1.0)
    assert ev.frac_nondecreasing(rising) == 1.0
    assert ev.frac_nondecreasing(falling) == 0.0
    # "smiles a little, goes back, smiles again"
    wobble = np.array([0, 0.5, 0.2, 0.6, 1.0])
    assert ev.largest_drop(wobble) == pytest.approx(0.3)
    assert ev.frac_nondecreasing(wobble) == pytest.approx(0.75)


def test_jump_metric():
    steady = np.linspace(0, 1, 10)
    assert ev.jump_ratio(steady) == pytest.approx(1 / 9)
    step = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1.0])
    assert ev.jump_ratio(step) == pytest.approx(1.0)
    jump_then_flat = np.array([0, 0.9, 0.92, 0.95, 1.0])
    assert ev.jump_ratio(jump_then_flat) == pytest.approx(0.9)
    assert math.isnan(ev.jump_ratio(np.zeros(10)))  # a frozen face has nothing to jump over


def test_curve_summary_keys():
    t = np.linspace(0, 1, 10)
    s = ev.curve_summary(t, t, t, t)
    assert set(s) == {"curve_trend", "curve_largest_drop", "curve_frac_nondecreasing", "curve_jump_ratio",
                      "curve_peak", "curve_gap"}
    assert s["curve_gap"] == 0 and s["curve_peak"] == 1.0


def test_pixel_metrics_known_values():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = np.full((2, 8, 8, 3), 51, np.uint8)  # 0.2 everywhere
    np.testing.assert_allclose(ev.l1(a, b), 0.2)
    np.testing.assert_allclose(ev.psnr(a, b), 10 * np.log10(1 / 0.04), rtol=1e-6)
    assert ev.video_psnr(a, b) == pytest.approx(10 * np.log10(1 / 0.04))
    two = np.concatenate([a[:1], b[:1]])  # one perfect frame does not make the video's PSNR infinite
    assert ev.video_psnr(two, a) == pytest.approx(10 * np.log10(1 / 0.02))
    assert ev.video_psnr(a, a) == ev.PSNR_IDENTICAL
    mask = np.zeros((2, 8, 8), np.uint8)
    mask[0, 2:4, 2:4] = 1
    c = a.copy()
    c[:, 2:4, 2:4] = 255  # differs only inside the mouth
    res = ev.masked_l1(c, a, mask)
    assert res[0] == pytest.approx(1.0) and math.isnan(res[1])  # empty mask -> NaN, not 0
    d = a.copy()
    d[:, 6:, 6:] = 255  # differs only outside
    assert ev.masked_l1(d, a, mask)[0] == 0.0
    s = ev.ssim(np.clip(video(2).astype(int) // 2, 0, 255).astype(np.uint8), video(2))
    assert np.all(s < 1.0)


def test_smoothness():
    still = np.repeat(video(1), 5, axis=0)
    assert ev.smoothness(still) == {"change_mean": 0.0, "change_max": 0.0}
    jump = np.zeros((5, 4, 4, 3), np.uint8)
    jump[3:] = 255
    s = ev.smoothness(jump)
    assert s["change_max"] == pytest.approx(1.0) and s["change_mean"] == pytest.approx(0.25)


def test_nearest_indices():
    gt_t = np.linspace(0, 1, 19)
    np.testing.assert_array_equal(ev.nearest_indices(np.linspace(0, 1, 10), gt_t), np.arange(0, 19, 2))


def test_bootstrap_ci():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 1.0, size=200)
    s = ev.bootstrap_ci(x)
    assert s["lo"] < s["mean"] < s["hi"] and s["n"] == 200
    assert s["mean"] == pytest.approx(x.mean())
    assert 0.1 < s["hi"] - s["lo"] < 0.5  # ~ 2 * 1.96 / sqrt(200) = 0.28
    small = ev.bootstrap_ci(x[:10])
    assert small["hi"] - small["lo"] > s["hi"] - s["lo"]
    assert ev.bootstrap_ci([1.0, float("nan"), 3.0])["n"] == 2
    assert ev.bootstrap_ci([2.0]) == {"mean": 2.0, "lo": 2.0, "hi": 2.0, "n": 1}
    assert ev.bootstrap_ci([])["n"] == 0


def test_aggregate_curves_common_and_mixed_times():
    t10 = np.linspace(0, 1, 10)
    agg = ev.aggregate_curves([(t10, t10), (t10, t10 * 3)])
    np.testing.assert_allclose(agg["t"], t10)
    np.testing.assert_allclose(agg["mean"], t10 * 2)
    assert all(lo <= m <= hi for lo, m, hi in zip(agg["lo"], agg["mean"], agg["hi"]))
    mixed = ev.aggregate_curves([(np.linspace(0, 1, 7), np.linspace(0, 1, 7)), (np.linspace(0, 1, 12), np.linspace(0, 1, 12))])
    assert len(mixed["t"]) == ev.GRID_POINTS
    np.testing.assert_allclose(mixed["mean"], mixed["t"], atol=1e-12)


def test_score_video_counts_undetected_frames_against_the_model():
    t = np.linspace(0, 1, 4)
    gt_lm = moving_face(4, t)
    lm = gt_lm.copy()
    lm[1] = np.nan  # no face found in frame 1
    frames = video(4)
    mask = np.ones((4, 16, 16), np.uint8)
    m, curve = ev.score_video(frames=frames, times=t, landmarks=lm, input_landmarks=gt_lm[0], gt_frames=frames,
                              gt_landmarks=gt_lm, gt_mouth_mask=mask, gt_times=t, gt_curve=t)
    assert m["detection_rate"] == 0.75
    assert m["nme"] == 0.0 and m["curve_gap"] == pytest.approx(0.0, abs=1e-12)  # on the detected frames
    assert math.isnan(curve[1])
    assert m["psnr"] == 100.0 and m["l1"] == 0.0 and m["mouth_l1"] == 0.0


def test_summarize():
    rows = [{"a": 1.0, "b": 2.0}, {"a": 3.0}]
    s = ev.summarize(rows)
    assert s["a"]["mean"] == 2.0 and s["a"]["n"] == 2
    assert s["b"]["n"] == 1


def test_identity_descriptor_separates_people():
    import imageio.v3 as iio
    import matplotlib.cbook as cbook
    import skimage.data

    from ckpp_tools.identity import SAME_PERSON_THRESHOLD, FaceEncoder, distance

    enc = FaceEncoder.shared()
    astro = skimage.data.astronaut()
    grace = iio.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    da, dg = enc.descriptor(astro), enc.descriptor(grace)
    assert da.shape == (128,)
    assert distance(da, dg) > SAME_PERSON_THRESHOLD
    assert distance(da, enc.descriptor(np.ascontiguousarray(astro[:, ::-1]))) < SAME_PERSON_THRESHOLD
    assert math.isnan(distance(da, enc.descriptor(np.zeros((64, 64, 3), np.uint8))))
