"""The shipped joint model (models/pretrained/ours-joint.pt, issue 23): `pretrained` names it, it knows all seven
expressions, mixes and degrees work as a user types them, and a degree of 0 gives back frame 0."""
from __future__ import annotations

import os

import matplotlib
import numpy as np
import pytest
from click.testing import CliRunner

from ckpp_tools.cli import main
from ckpp_tools.emotions import EXPRESSIONS

HOPPER = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
JOINT = os.path.join(os.path.dirname(__file__), "..", "models", "pretrained", "ours-joint.pt")
pytestmark = pytest.mark.skipif(not os.path.isfile(JOINT), reason="no shipped joint weights in this checkout")


@pytest.fixture(scope="module")
def pipe():
    from models.pipeline import ExpressionPipeline

    return ExpressionPipeline.from_pretrained("pretrained")


def test_pretrained_is_the_joint_model_and_small(pipe):
    from models.checkpoint import find_checkpoint

    assert os.path.samefile(find_checkpoint("pretrained"), JOINT)
    assert os.path.getsize(JOINT) <= 12 * 1024 * 1024
    assert pipe.emotions == list(EXPRESSIONS) and pipe.name == "ours"
    # the single-expression weights stay reachable by name
    from models.pretrained import available

    assert "ours-joint" in available() and all(f"pretrained:{n}" for n in available())


def test_every_expression_a_mix_and_degree_zero(pipe):
    frames = {}
    for e in EXPRESSIONS:
        out = pipe(HOPPER, e, num_frames=3)
        assert out.frames.shape[0] == 3 and out.frames.dtype == np.uint8
        frames[e] = out.frames
        moved = np.abs(out.peak.astype(float) - out.first.astype(float)).mean()
        assert moved > 0.2, f"{e}: the peak is frame 0 ({moved:.3f})"
    # every expression starts from the same frame 0 (degree 0 is the photo's own face)
    for e in EXPRESSIONS[1:]:
        assert np.abs(frames[e][0].astype(int) - frames[EXPRESSIONS[0]][0].astype(int)).max() <= 1
    # the peaks differ between expressions: seven encoders, not seven copies
    peaks = np.stack([frames[e][-1].astype(float) for e in EXPRESSIONS])
    assert min(np.abs(peaks[i] - peaks[j]).mean() for i in range(7) for j in range(i + 1, 7)) > 0.05
    # a degree of 0: every frame is frame 0
    zero = pipe(HOPPER, {"happy": 0.0}, num_frames=3).frames
    assert np.abs(zero.astype(int) - zero[0].astype(int)).max() <= 1
    assert np.abs(zero[0].astype(int) - frames["happy"][0].astype(int)).max() <= 1
    # a mix 0.5/0.5 lands between the two pure expressions (nearer each of them than they are to each other)
    mix = pipe(HOPPER, {"anger": 0.5, "surprise": 0.5}, num_frames=3).peak.astype(float)
    a, s = frames["anger"][-1].astype(float), frames["surprise"][-1].astype(float)
    assert np.abs(mix - a).mean() < np.abs(s - a).mean() and np.abs(mix - s).mean() < np.abs(s - a).mean()


def test_cli_as_typed(tmp_path):
    for args, name in ((["--emotion", "happy"], "happy.gif"),
                       (["--emotion", "anger=0.5", "--emotion", "surprise=0.5"], "mix.gif"),
                       (["--emotion", "sad=0.4"], "sad.gif")):
        res = CliRunner().invoke(main, ["generate", "pretrained", HOPPER, *args, "--frames", "3",
                                        "-o", str(tmp_path / name)])
        assert res.exit_code == 0, res.output
        assert (tmp_path / name).stat().st_size > 0
    res = CliRunner().invoke(main, ["generate", "pretrained", HOPPER, "--emotion", "smug", "-o", str(tmp_path / "x.gif")])
    assert res.exit_code != 0 and "not one this model was trained on" in res.output and "Traceback" not in res.output
