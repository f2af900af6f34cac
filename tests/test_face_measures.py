"""face_measures: IOD-unit expression measures are invariant to scale/roll and see known motion."""
import numpy as np

from ckpp_tools import expressions as ex
from ckpp_tools.face_measures import displacement_cosine, gains, measure
from ckpp_tools.faces import base_photo


def _rotate_scale(p, deg, s, t):
    a = np.radians(deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (p @ r.T) * s + t


def test_measures_invariant_to_similarity_and_see_surprise():
    _, pts = base_photo("grace_hopper")
    m0 = measure(pts)
    m1 = measure(_rotate_scale(pts, 25.0, 1.7, np.array([40.0, -13.0])))
    for k in m0:
        assert abs(m0[k] - m1[k]) < 1e-9
    peak = ex.displace(pts, ex.DISPLACEMENTS["surprise"])
    g = gains(pts, peak)
    assert g["mouth_open"] > 0.1 and g["brow_height"] > 0.02
    assert displacement_cosine(pts, peak, ex.DISPLACEMENTS["surprise"]) > 0.99
    assert displacement_cosine(pts, peak, -ex.DISPLACEMENTS["surprise"]) < -0.99
    assert np.isnan(displacement_cosine(pts, pts, ex.DISPLACEMENTS["surprise"]))
