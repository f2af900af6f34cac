"""Neutral base faces (neutral.py): a smiling photo's smile is estimated and taken back before sampling."""
from __future__ import annotations

import numpy as np
import pytest

from ckpp_tools.expressions import DISPLACEMENTS, displace
from ckpp_tools.face_measures import measure
from ckpp_tools.faces import base_photo
from ckpp_tools.neutral import NEUTRAL, estimate_smile, neutralise

#: mouth width / IOD of neutral faces: 5th-95th percentile over 72 NBA headshots labelled neutral by eye
NEUTRAL_WIDTH = (0.54, 0.685)


@pytest.fixture(scope="module")
def hopper():
    return base_photo("grace_hopper")[1]


def test_synthetic_smile_is_estimated_and_taken_back(hopper):
    neutral = displace(hopper, neutralise(hopper)[0])
    assert estimate_smile(neutral) < 0.05
    for a in (0.5, 0.9):
        smiling = displace(neutral, DISPLACEMENTS["happy"] * a)
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
