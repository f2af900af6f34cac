"""Sample expressions from FACS action units (action_units.py): every expression's truth trajectory moves the
landmarks its action units name, on a real photo; smiling photos start from a neutral onset; the skin
shading darkens where folds form and nowhere else."""
from __future__ import annotations

import numpy as np
import pytest

from ckpp_tools import action_units as au
from ckpp_tools.emotions import EXPRESSIONS
from ckpp_tools.face_measures import measure, to_face_frame

#: mouth width / IOD of neutral faces: 5th-95th percentile over 72 NBA headshots labelled neutral by eye
NEUTRAL_WIDTH = (0.54, 0.685)


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory):
    """Every expression's truth trajectory (onset, peak landmarks) from one `ckpp sample --emotions all` subject
    made from a real photo (Grace Hopper: a face that does not smile, so the motion is the expression's)."""
    from ckpp_tools.sample import make_sample

    root = tmp_path_factory.mktemp("au") / "raw"
    truth = make_sample(root, subjects=1, seed=0, small=True, workers=1, progress=False, ckplus=False,
                        bad_cases=False, emotions=list(EXPRESSIONS), photos=["grace_hopper"])
    out = {}
    for e in truth["clips"].values():
        lm = np.asarray(e["landmarks"])
        out[e["emotion"]] = (to_face_frame(lm[e["onset"]]), to_face_frame(lm[e["peak"]]), e)
    assert set(out) == set(EXPRESSIONS)
    return out


def motion(traj, emotion, idx, axis=1):
    a, b, _ = traj[emotion]
    return float(np.mean(b[idx, axis] - a[idx, axis]))


def test_surprise_raises_brows_and_lids_and_drops_the_jaw(trajectories):   # AU 1+2+5+26/27
    assert motion(trajectories, "surprise", [21, 22]) < -0.05                  # inner brows up (AU1)
    assert motion(trajectories, "surprise", [17, 18, 25, 26]) < -0.05          # outer brows up (AU2)
    assert motion(trajectories, "surprise", [37, 38, 43, 44]) < -0.02          # upper lids up (AU5)
    assert motion(trajectories, "surprise", [8]) > 0.15                        # jaw down (AU26/27)
    a, b, _ = trajectories["surprise"]
    assert measure_open(b) - measure_open(a) > 0.15


def measure_open(q):
    return float(np.mean(np.linalg.norm(q[[61, 62, 63]] - q[[67, 66, 65]], axis=1)))


def test_happiness_raises_and_widens_the_lip_corners(trajectories):          # AU 6+12+25
    a, b, _ = trajectories["happy"]
    assert motion(trajectories, "happy", [48, 54]) < -0.05                     # corners up (AU12)
    assert np.linalg.norm(b[54] - b[48]) - np.linalg.norm(a[54] - a[48]) > 0.1  # and apart
    assert motion(trajectories, "happy", [40, 41, 46, 47]) < -0.01             # lower lids up (AU6)
    assert measure_open(b) - measure_open(a) > 0.03                            # lips part: teeth (AU25)


def test_sadness_raises_the_inner_brows_and_lowers_the_lip_corners(trajectories):   # AU 1+4+15+17
    inner = motion(trajectories, "sadness", [21, 22])
    outer = motion(trajectories, "sadness", [17, 26])
    assert inner < -0.04 and inner < outer - 0.03                              # oblique brows (AU1, not AU2)
    assert motion(trajectories, "sadness", [48, 54]) > 0.05                    # corners down (AU15)
    assert motion(trajectories, "sadness", [57]) < -0.01                       # chin pushes the lower lip up (AU17)


def test_anger_lowers_and_draws_the_brows_together_and_presses_the_lips(trajectories):   # AU 4+5+7+23/24
    a, b, _ = trajectories["anger"]
    assert motion(trajectories, "anger", [21, 22]) > 0.08                      # brows down (AU4)
    assert (b[22, 0] - b[21, 0]) - (a[22, 0] - a[21, 0]) < -0.1                # and together (AU4)
    assert motion(trajectories, "anger", [40, 41, 46, 47]) < -0.02             # lower lids tense up (AU7)
    assert (b[57, 1] - b[51, 1]) - (a[57, 1] - a[51, 1]) < -0.03               # lips pressed thin (AU23/24)


def test_disgust_wrinkles_the_nose_raises_the_upper_lip_and_lowers_the_brows(trajectories):   # AU 9+10 (+4, 15)
    assert motion(trajectories, "disgust", [50, 51, 52]) < -0.08               # upper lip up (AU10)
    assert motion(trajectories, "disgust", [31, 35]) < -0.04                   # nose wings up (AU9)
    assert motion(trajectories, "disgust", [21, 22]) > 0.05                    # brows down (AU4/9)


def test_fear_raises_brows_and_lids_stretches_and_opens_the_lips(trajectories):   # AU 1+2+4+5+20+25+26
    a, b, _ = trajectories["fear"]
    assert motion(trajectories, "fear", [21, 22]) < -0.04                      # brows up (AU1+2) ...
    assert (b[22, 0] - b[21, 0]) - (a[22, 0] - a[21, 0]) < -0.03               # ... and drawn together (AU4)
    assert motion(trajectories, "fear", [37, 38, 43, 44]) < -0.03              # upper lids up (AU5)
    assert np.linalg.norm(b[54] - b[48]) - np.linalg.norm(a[54] - a[48]) > 0.1  # lips stretched (AU20)
    assert measure_open(b) - measure_open(a) > 0.05                            # and parted (AU25/26)


def test_contempt_is_one_sided(trajectories):                                 # unilateral AU 12+14
    a, b, _ = trajectories["contempt"]
    d = np.abs(b - a)
    right = [i for i in range(68) if au._SIDE[i] > 0]
    left = [i for i in range(68) if au._SIDE[i] < 0]
    assert d[right].max() > 0.08 and d[left].max() < 1e-3
    assert motion(trajectories, "contempt", [54]) < -0.05                      # one corner up (image right)


def test_onset_and_peak_timing_follow_each_expression(trajectories):
    """Truth onset/peak are where the intensity says, and a surprise rises faster than a sadness (CK+)."""
    rises = {}
    for emotion, (_, _, e) in trajectories.items():
        a = np.asarray(e["intensity"])
        assert a[e["onset"]] == 0 and a[e["onset"] + 1] > 0 and a[e["peak"]] == 1 and a[e["peak"] - 1] < 1
        rises[emotion] = e["peak"] - e["onset"]
    assert rises["surprise"] < rises["sadness"]


def test_smiling_photo_starts_from_a_neutral_onset():
    """The astronaut smiles with her teeth showing: her onset has the lips shut, the mouth as wide as a
    neutral face's, and no bright teeth left between the lips."""
    import cv2

    from ckpp_tools.expressions import displace
    from ckpp_tools.faces import base_photo
    from ckpp_tools.neutral import neutral_photo, onset_field

    img, lm = base_photo("astronaut")
    before = measure(lm)
    assert before["mouth_open"] > 0.08 and before["mouth_width"] > NEUTRAL_WIDTH[1]
    field, _ = onset_field(lm)
    after = measure(displace(lm, field))
    assert after["mouth_open"] < 0.005, "lips closed"
    assert NEUTRAL_WIDTH[0] <= after["mouth_width"] <= NEUTRAL_WIDTH[1]
    out, pts, _ = neutral_photo(img, lm)
    gray = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(float)
    src = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(float)

    def band(g, p):   # the pixels on the lips' meeting line
        m = np.zeros(g.shape, np.uint8)
        cv2.polylines(m, [np.round(p[[61, 62, 63]]).astype(np.int32)], False, 1, 3)   # the middle of the seam
        return g[m > 0]

    teeth_before = np.percentile(src[_inner_mask(src.shape, lm)], 75)
    lips = np.zeros(gray.shape, np.uint8)
    cv2.fillPoly(lips, [np.round(pts[[48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59]]).astype(np.int32)], 1)
    lip_level = np.median(gray[lips > 0])
    assert teeth_before > lip_level + 40, "her teeth are much brighter than her lips in the photo"
    assert np.median(band(gray, pts)) <= lip_level + 5, "the lips' seam is no brighter than the lips: no teeth"


def _inner_mask(shape, p):
    import cv2

    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(p[60:68]).astype(np.int32)], 1)
    return m > 0


def test_broad_grins_leave_the_nba_subjects_but_not_the_held_out_people():
    from ckpp_tools.photo_sources import BasePhoto, PhotoScan, assign

    def photo(k, smile, opened):
        return BasePhoto(name=f"p{k}", path=f"/x/p{k}.jpg", sha1=str(k), size=(10, 10), landmarks=np.zeros((68, 2)),
                         expression={"happy": smile, "mouth_open": opened})

    usable = [photo(k, 0.9 if k % 3 == 0 else 0.2, 0.15 if k % 3 == 0 else 0.01) for k in range(30)]
    scan = PhotoScan(source="nba", folder="/x", usable=usable, skipped=[])
    plain = assign(scan, 0, None, 6, ckplus=False)
    kept = assign(scan, 0, None, 6, ckplus=False, neutral_only=True)
    assert [b.name for b in kept.held_out] == [b.name for b in plain.held_out]
    assert all(b.expression["happy"] < 0.7 for b, _ in kept.videos)
    assert len(kept.videos) + len(kept.grins) == len(plain.videos) and kept.grins


def test_shading_darkens_the_folds_of_its_action_units_only():
    """AU12's nasolabial fold darkens the cheek beside the mouth, not the forehead; no AU, no change."""
    from ckpp_tools.faces import base_photo

    img, lm = base_photo("grace_hopper")
    img = np.ascontiguousarray(img)
    same = img.copy()
    au.shade(same, lm, {})
    assert np.array_equal(same, img)
    smile = img.copy()
    au.shade(smile, lm, {12: 1.0})
    diff = img.astype(float).mean(-1) - smile.astype(float).mean(-1)
    iod = float(np.linalg.norm(lm[45] - lm[36]))
    fold = (lm[31] + lm[48]) / 2 - (lm[33] - lm[31]) * 0.5          # beside the nose wing-to-corner line
    y, x = np.round(fold[::-1]).astype(int)
    assert diff[y - 3:y + 4, x - 3:x + 4].max() > 5, "the fold is darker"
    brow = np.round(lm[19] - np.array([0, 0.2 * iod])).astype(int)
    assert abs(diff[brow[1], brow[0]]) < 1, "the forehead is untouched"


def test_cli_emotions_all_gives_every_subject_all_seven(tmp_path):
    from click.testing import CliRunner

    from ckpp_tools.cli import main
    from ckpp_tools.sample import load_truth

    r = CliRunner().invoke(main, ["sample", str(tmp_path / "raw"), "--small", "--subjects", "1", "--emotions", "all",
                                  "--no-ckplus", "--no-bad-cases", "--photos", "grace_hopper"])
    assert r.exit_code == 0, r.output
    assert sorted(e["emotion"] for e in load_truth(tmp_path / "raw")["clips"].values()) == sorted(EXPRESSIONS)


def test_intensities_are_on_the_documented_scale():
    """1 = an AU's strongest use: no expression goes past it, and every AU an expression names exists."""
    for name, spec in au.EXPRESSIONS.items():
        for table in (spec["aus"], spec.get("right", {})):
            assert all(a in au.AU_TABLE and 0 < w <= 1.0 for a, w in table.items()), name
        assert 0 <= spec["teeth"] <= 1
    assert set(au.EXPRESSIONS) == set(EXPRESSIONS)
