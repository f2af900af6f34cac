"""The demo recipe's pieces: colour/grey/scale augmentation, peak-biased targets, the mouth-region L1,
`--init` (fine-tuning from a run or the shipped weights), and `pretrained` lookup."""
import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ckpp_tools.cli import main
from ckpp_tools.errors import CkppError
from models import losses
from models.checkpoint import find_checkpoint, load_run, read_checkpoint
from models.config import PRESETS, load_config, preset
from models.data import ClipDataset
from models.training_loop import train
from tests.fakes import make_fake_dataset

torch.set_num_threads(1)
SMALL = {"preset": "demo", "image_size": 32, "levels": 5, "base_width": 8, "max_width": 32, "d_width": 8,
         "batch_size": 4, "num_workers": 0, "log_every": 1, "ckpt_every": 3, "sample_every": 3}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipe")
    return make_fake_dataset(d / "out.h5", emotions=("surprise",), n_clips=3, T=8, size=36)


def test_paper_preset_untouched_by_the_recipe_knobs():
    p = preset("paper")
    assert (p.color_jitter, p.gray_prob, p.scale_jitter, p.peak_bias, p.weight("mouth")) == (0, 0, 0, 0, 0)
    assert p.image_size == 256 and p.widths()[0] == 64 and p.batch_size == 64 and p.lr == 2e-4
    d = preset("demo")
    assert d.widths() == [16, 32, 64, 96, 96, 96] and d.image_size == 64


def test_colour_jitter_is_one_change_per_sample_and_keeps_geometry(data):
    plain = ClipDataset([data], ["surprise"], "train", image_size=32)
    jit = ClipDataset([data], ["surprise"], "train", image_size=32, color_jitter=0.3, gray_prob=0.5)
    changed, grey = 0, 0
    for draw in range(12):
        a, b = plain[(0, draw)], jit[(0, draw)]
        assert np.array_equal(a["landmarks"], b["landmarks"]) and np.array_equal(a["mask"], b["mask"])
        changed += int(np.abs(a["input"].astype(int) - b["input"]).mean() > 2)
        g = b["input"].astype(int)
        if np.abs(g[..., 0] - g[..., 1]).max() <= 2 and np.abs(g[..., 1] - g[..., 2]).max() <= 2:
            grey += 1
            t = b["target"].astype(int)           # input and target share the colour change
            assert np.abs(t[..., 0] - t[..., 1]).max() <= 2
    assert changed >= 10 and 1 <= grey <= 11
    off = ClipDataset([data], ["surprise"], "train", image_size=32, augment=False, color_jitter=0.3, gray_prob=1.0)
    assert off._colour_fn(np.random.default_rng(0)) is None      # evaluation samples are never jittered


def test_peak_bias_draws_more_peak_frames(data):
    def mean_degree(bias):
        ds = ClipDataset([data], ["surprise"], "train", image_size=32, peak_bias=bias)
        return float(np.mean([ds[(0, d)]["degree"] for d in range(300)]))
    assert mean_degree(4.0) > mean_degree(0.0) + 0.08


def test_scale_jitter_changes_the_crop(data):
    ds = ClipDataset([data], ["surprise"], "train", image_size=32, scale_jitter=0.1, flip=False)
    spans = {round(float(np.ptp(ds[(0, d)]["input_landmarks"][:, 0])), 3) for d in range(20)}
    assert len(spans) > 3


def test_mouth_loss_only_sees_the_mask():
    v, y = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    m = torch.zeros(1, 1, 8, 8)
    m[..., 2:4, 2:4] = 1
    y[..., 6:, 6:] = 1.0                                 # outside the mask: no mouth loss
    assert losses.masked_reconstruction(v, y, m).item() == 0
    y[..., 2:4, 2:4] = 0.5                               # inside: the mask's own mean, not diluted by the frame
    assert abs(losses.masked_reconstruction(v, y, m).item() - 0.5) < 1e-6


def test_init_fine_tunes_from_a_run_and_says_so(data, tmp_path):
    cfg = load_config("demo").replace(**{k: v for k, v in SMALL.items() if k != "preset"}, max_steps=3,
                                      loss_weights={"mouth": 5.0}, peak_bias=1.0, color_jitter=0.1)
    train(cfg, "ours", ["surprise"], [data], tmp_path / "a", progress=False)
    res = train(cfg.replace(max_steps=0), "ours", ["surprise"], [data], tmp_path / "b", progress=False,
                init=str(tmp_path / "a"))
    a, b = read_checkpoint(tmp_path / "a"), read_checkpoint(tmp_path / "b")
    for k, v in a["modules"]["G"].items():
        assert torch.equal(v, b["modules"]["G"][k])
    assert json.loads((tmp_path / "b" / "run.json").read_text())["init"]["step"] == 3
    assert "mouth" in json.loads((tmp_path / "a" / "metrics.jsonl").read_text().splitlines()[-1])
    with pytest.raises(CkppError, match="happy"):
        train(cfg, "ours", ["happy"], [make_fake_dataset(tmp_path / "h.h5", emotions=("happy",), n_clips=2, T=6, size=36)],
              tmp_path / "c", progress=False, init=str(tmp_path / "a"))
    assert res["step"] == 0


def test_init_across_residual_modes_resets_only_the_residual_channels(data, tmp_path):
    cfg = load_config("demo").replace(**{k: v for k, v in SMALL.items() if k != "preset"}, max_steps=3,
                                      residual="colour")
    train(cfg, "ours", ["surprise"], [data], tmp_path / "colour", progress=False)
    res = train(cfg.replace(max_steps=0, residual="delta"), "ours", ["surprise"], [data], tmp_path / "delta",
                progress=False, init=str(tmp_path / "colour"))
    a, b = read_checkpoint(tmp_path / "colour")["modules"]["G"], read_checkpoint(tmp_path / "delta")["modules"]["G"]
    last = max(int(k.split(".")[1]) for k in a if k.startswith("ups."))
    w, bias = f"ups.{last}.conv.weight", f"ups.{last}.conv.bias"
    assert a[w][:, 3:6].abs().max() > 0 and b[w][:, 3:6].abs().max() == 0 and b[bias][3:6].abs().max() == 0
    assert torch.equal(a[w][:, :3], b[w][:, :3]) and torch.equal(a[bias][:3], b[bias][:3])  # flow, mask kept
    assert all(torch.equal(v, b[k]) for k, v in a.items() if not k.startswith(f"ups.{last}."))
    run = json.loads((tmp_path / "delta" / "run.json").read_text())
    assert run["init"]["from_residual"] == "colour" and "residual channels" in run["init"]["reset"]
    assert res["step"] == 0


def test_unknown_pretrained_name_lists_the_shipped_ones():
    with pytest.raises(CkppError) as e:
        find_checkpoint("pretrained:nope")
    assert "no pretrained weights named 'nope'" in str(e.value)


@pytest.mark.skipif(not os.path.isfile(os.path.join(os.path.dirname(__file__), "..", "models", "pretrained",
                                                    "ours-surprise.pt")), reason="no shipped weights in this checkout")
def test_generate_with_the_shipped_weights(tmp_path):
    """The single-expression weights `ckpp demo` fine-tunes, by name (`pretrained` alone is the joint model
    where it ships: tests/test_pretrained_joint.py)."""
    from ckpp_tools.faces import PHOTOS
    import cv2

    path = find_checkpoint("pretrained:ours-surprise")
    assert os.path.getsize(path) <= 5 * 1024 * 1024
    fam, meta = load_run("pretrained:ours-surprise")
    assert meta["family"] == "ours" and meta["emotions"] == ["surprise"] and meta["config"]["base_width"] == 16
    photo = tmp_path / "grace.png"
    cv2.imwrite(str(photo), cv2.cvtColor(PHOTOS["grace_hopper"](), cv2.COLOR_RGB2BGR))
    res = CliRunner().invoke(main, ["generate", "pretrained:ours-surprise", str(photo), "--emotion", "surprise", "--frames", "4",
                                    "-o", str(tmp_path / "out.gif")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out.gif").stat().st_size > 0 and "ours step" in res.output


@pytest.mark.skipif(not os.path.isfile(os.path.join(os.path.dirname(__file__), "..", "models", "pretrained",
                                                    "ours-surprise.pt")), reason="no shipped weights in this checkout")
def test_init_pretrained_for_one_expression_takes_its_own_weights(tmp_path):
    """`--init pretrained` names the joint model where it ships; a surprise-only run then starts from
    ours-surprise (what `ckpp train --emotion surprise --config demo --init pretrained` always did)."""
    data = make_fake_dataset(tmp_path / "s.h5", emotions=("surprise",), n_clips=2, T=4, size=72)
    cfg = load_config("demo").replace(num_workers=0, batch_size=2, max_steps=0)
    train(cfg, "ours", ["surprise"], [data], tmp_path / "r", progress=False, init="pretrained")
    init = json.loads((tmp_path / "r" / "run.json").read_text())["init"]
    assert os.path.basename(init["path"]) == "ours-surprise.pt"
