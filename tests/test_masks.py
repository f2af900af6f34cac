"""Region masks: filled convex hulls in stored pixels."""
import numpy as np

from ckpp_tools.masks import mouth_masks, region_mask
from ckpp_tools.schema import MOUTH


def test_region_mask_square_area_and_hull():
    pts = np.zeros((68, 2))
    pts[55:68] = (20, 20)  # interior points don't change the hull
    pts[[48, 54, 57, 51]] = [(10, 10), (30, 10), (30, 30), (10, 30)]
    pts[49:51] = (20, 10)
    pts[52:54] = (30, 20)
    m = region_mask(pts, MOUTH, 40)
    assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 1}
    assert abs(int(m.sum()) - 21 * 21) <= 21  # 20x20 square, pixel-centre raster
    assert m[20, 20] == 1 and m[5, 5] == 0 and m[35, 35] == 0


def test_mouth_masks_stack_and_outside_points():
    lm = np.random.default_rng(0).uniform(0, 50, (3, 68, 2))
    lm[2] += 1000  # completely outside: empty mask, no error
    ms = mouth_masks(lm, 50)
    assert ms.shape == (3, 50, 50) and ms.dtype == np.uint8
    assert ms[0].sum() > 0 and ms[2].sum() == 0
    rect = region_mask(lm[0], MOUTH, (20, 60))
    assert rect.shape == (20, 60)


def test_nan_landmarks_give_empty_mask():
    lm = np.full((68, 2), np.nan)
    assert region_mask(lm, MOUTH, 10).sum() == 0
