"""The landmark-motion maths of models/landmark_motion.py on synthetic landmark arrays (no detector, no model)."""
import numpy as np
import pytest

from ckpp_tools.action_units import expression_field
from models import landmark_motion as lm


def _face(seed=0):
    """A plausible 68-point face: outer eye corners 36/45 one unit apart, the rest jittered around them."""
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 0.4, (68, 2))
    p[36], p[45] = (-0.5, 0.0), (0.5, 0.0)
    return p


def _move(points, scale, degrees, shift):
    a = np.deg2rad(degrees)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return scale * np.asarray(points) @ r.T + np.asarray(shift)


def test_cosine_of_identical_motions_is_one_and_opposite_minus_one():
    m = expression_field("surprise")
    assert lm.cosine(m, m) == pytest.approx(1.0)
    assert lm.cosine(m, 3 * m) == pytest.approx(1.0)
    assert lm.cosine(m, -m) == pytest.approx(-1.0)
    assert lm.cosine(m, expression_field("happy")) < 0.9
    assert np.isnan(lm.cosine(m, np.zeros((68, 2))))          # a still face has no direction
    assert lm.region_cosines(m, m)["brows"] == pytest.approx(1.0)


@pytest.mark.parametrize("reference", [None, "face"])
def test_normalisation_removes_scale_rotation_translation(reference):
    start = _face(1)
    field = expression_field("anger")
    peak = start + field                                      # IOD 1, so the field is the motion itself
    # a reference like the data's mean face: the same face, a little different
    ref = lm.reference_face([start + np.random.default_rng(k).normal(0, 0.02, (68, 2)) for k in (2, 3)]) \
        if reference else None
    want = lm.normalised_motion(start, peak, ref)
    for scale, deg, shift in [(80.0, 0.0, (100, 50)), (37.5, 23.0, (-4, 300)), (120.0, -40.0, (0, 0))]:
        got = lm.normalised_motion(_move(start, scale, deg, shift), _move(peak, scale, deg, shift), ref)
        np.testing.assert_allclose(got, want, atol=1e-9)
    if reference is None:                                     # the eye frame of an IOD-1 level face: unchanged
        np.testing.assert_allclose(want, field, atol=1e-12)
    assert lm.cosine(want, field) > 0.9


def test_similarity_recovers_the_transform_and_never_reflects():
    x = _face(4)
    s, r, t = lm.similarity(x, _move(x, 2.5, 30.0, (7, -3)))
    assert s == pytest.approx(2.5)
    assert np.rad2deg(np.arctan2(r[1, 0], r[0, 0])) == pytest.approx(30.0)
    np.testing.assert_allclose(t, (7, -3), atol=1e-9)
    mirrored = x * np.array([-1.0, 1.0])
    _, r, _ = lm.similarity(x, mirrored)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_mix_halfway_gives_t_one_half_and_lies_on_the_segment():
    a, b = expression_field("happy"), expression_field("surprise")
    r = lm.between((a + b) / 2, a, b)
    assert r["t"] == pytest.approx(0.5)
    assert r["off_line"] == pytest.approx(0.0, abs=1e-12)
    assert r["cos_mid"] == pytest.approx(1.0)
    assert lm.between(a, a, b)["t"] == pytest.approx(0.0)
    assert lm.between(b, a, b)["t"] == pytest.approx(1.0)
    # only A, at half its degree: t < 0 (not between), and off the segment
    r = lm.between(a / 2, a, b)
    assert r["t"] < 0 and r["off_segment"] > 0.1
    # a mix that moves something neither pure expression moves: off the line
    other = expression_field("contempt")
    assert lm.between((a + b) / 2 + other, a, b)["off_line"] > 0.2
    assert np.isnan(lm.between(a, a, a)["t"])


def test_truth_motions_reads_a_sample_truth():
    start = _face(5)
    frames = [start, start + 0.5 * expression_field("sadness"), start + expression_field("sadness")]
    clips = {"ours/P001/sadness_1.mp4": {"emotion": "sadness", "expected_status": "accepted", "onset": 0, "peak": 2,
                                         "landmarks": [f.tolist() for f in frames]},
             "ours/P001/happy_blur.mp4": {"emotion": "happy", "expected_status": "rejected", "onset": 0, "peak": 2,
                                          "landmarks": [f.tolist() for f in frames]},
             "ours/P001/happy_x.mp4": {"emotion": "happy", "expected_status": "accepted", "onset": -1, "peak": -1,
                                       "landmarks": []}}
    got = lm.truth_motions(clips)
    assert list(got) == ["sadness"] and len(got["sadness"]) == 1
    np.testing.assert_allclose(got["sadness"][0], expression_field("sadness"), atol=1e-12)
    assert len(lm.truth_onsets(clips)) == 1
    m = lm.mean_motion([got["sadness"][0], np.full((68, 2), np.nan)])
    np.testing.assert_allclose(m, expression_field("sadness"))


def test_prepared_motions_reads_a_prepared_file_train_split(tmp_path):
    """--train-data's motion: frame 0 -> the clip's highest degree, as the prepared file stores it."""
    from ckpp_tools.reader import open_dataset
    from tests.fakes import make_fake_dataset

    path = make_fake_dataset(tmp_path / "d.h5", emotions=("happy", "surprise"), n_clips=4, T=6)
    with open_dataset(path) as ds:
        train = list(ds.iter_clips(split="train", frames=False))
        got = lm.prepared_motions(train)
        assert sorted(got) == ["happy", "surprise"]
        assert sum(len(v) for v in got.values()) == len(train)
        c = train[0]
        peak = int(np.argmax(c.degree))
        want = lm.normalised_motion(c.landmarks[0].astype(np.float64), c.landmarks[peak].astype(np.float64))
        np.testing.assert_allclose(got[c.attrs["emotion"]][0], want)
        assert np.linalg.norm(want) > 0.05                    # the fake clips do move
    # a clip without a rise, or without a face in a frame, is left out
    still = type("C", (), {"landmarks": np.zeros((3, 68, 2)), "degree": np.zeros(3), "attrs": {"emotion": "fear"}})
    lost = type("C", (), {"landmarks": np.full((3, 68, 2), np.nan), "degree": np.arange(3.0),
                          "attrs": {"emotion": "fear"}})
    assert lm.prepared_motions([still, lost]) == {}
