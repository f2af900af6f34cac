"""ConvLSTM and HP baselines (paper §4): shapes, the common generation interface, a CPU overfit, checkpoint
round-trip, `ckpp train --model convlstm|hp` and generation from a real photo."""
import os

import matplotlib
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ckpp_tools.cli import main
from ckpp_tools.errors import UsageError
from models.baselines.common import (HEATMAP_GROUPS, LandmarkLSTM, landmark_heatmaps, resample_time,
                                     resample_times)
from models.config import preset
from models.data import ClipDataset, to_model_batch
from models.registry import get_family
from tests.fakes import make_fake_dataset

MODELS = ("convlstm", "hp")
GRACE = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


def small_cfg(**kw):
    """32², 5 levels: the tiny preset's widths, a quarter of its pixels."""
    return preset("tiny").replace(image_size=32, levels=5, crop_fraction=1.0, **kw)


@pytest.fixture(scope="module")
def data32(tmp_path_factory):
    return make_fake_dataset(tmp_path_factory.mktemp("d32") / "data.h5", emotions=("surprise",), n_clips=2, T=12, size=32)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions gain little from a second thread, and on a loaded machine it costs a lot."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def sequence_batch(path, size=32):
    ds = ClipDataset([path], ["surprise"], "train", image_size=size, crop_fraction=1.0, clip_frames=10, augment=False)
    return to_model_batch(torch.utils.data.default_collate([ds[i] for i in range(len(ds))]), "cpu")


def gen_kwargs(name, batch, n):
    return {"landmarks": batch["landmarks"][:n, 0]} if name == "hp" else {}


# ---- pieces ------------------------------------------------------------------------------------

def test_heatmaps_equal_dense_gaussians():
    torch.manual_seed(0)
    p = torch.rand(3, 68, 2) * 0.6 + 0.2
    maps = landmark_heatmaps(p, 24, sigma=0.05)
    c = (torch.arange(24) + 0.5) / 24
    d2 = (c.view(1, 1, 1, -1) - p[..., 0, None, None]) ** 2 + (c.view(1, 1, -1, 1) - p[..., 1, None, None]) ** 2
    dense = torch.exp(-d2 / (2 * 0.05 ** 2))
    ref = torch.stack([dense[:, list(g)].sum(1) for g in HEATMAP_GROUPS], 1).clamp(max=1)
    assert maps.shape == (3, len(HEATMAP_GROUPS), 24, 24)
    assert torch.allclose(maps, ref, atol=1e-5)
    # the inner-lip channel peaks on an inner-lip point
    y, x = divmod(int(maps[0, 7].argmax()), 24)
    d = ((p[0, 60:68] * 24 - torch.tensor([x + 0.5, y + 0.5])) ** 2).sum(1).sqrt()
    assert d.min() < 1.5


def test_resampling_follows_the_weight():
    native = torch.arange(10.0).view(1, 10).repeat(3, 1)
    w = torch.tensor([1.0, 0.5, 0.0])
    assert torch.equal(resample_time(native, resample_times(w, 10), "nearest")[0], native[0])   # w=1, 10: native
    half = resample_time(native, resample_times(w, 10), "linear")[1]
    assert torch.allclose(half, torch.linspace(0, 4.5, 10))                                      # first half
    assert torch.all(resample_time(native, resample_times(w, 16), "nearest")[2] == 0)            # w=0: still
    assert resample_time(native, resample_times(w, 3), "nearest")[0].tolist() == [0, 5, 9]


def test_landmark_lstm_starts_still_and_keeps_the_first_pose():
    torch.manual_seed(0)
    p = torch.rand(2, 68, 2)
    out = LandmarkLSTM(16)(p, 10)
    assert out.shape == (2, 10, 68, 2)
    assert torch.equal(out[:, 0], p) and torch.allclose(out, p[:, None].expand_as(out))


@pytest.mark.parametrize("name", MODELS)
def test_generate_shapes_and_weights(name, data32):
    torch.manual_seed(0)
    fam = get_family(name)(small_cfg(), ["surprise"]).attach(train=False)
    assert fam.native_frames == 10 and fam.clip_frames == 10 and not fam.multi_emotion
    batch = sequence_batch(data32)
    first, n = batch["input"][:1].repeat(2, 1, 1, 1), 2
    kw = {"landmarks": batch["landmarks"][:1, 0].repeat(2, 1, 1)} if name == "hp" else {}
    native = fam.generate(first, torch.ones(n, 1), 10, **kw)
    assert native.shape == (n, 10, 3, 32, 32) and native.abs().max() <= 1
    v16 = fam.generate(first, torch.tensor([[1.0], [0.0]]), 16, **kw)
    assert v16.shape == (n, 16, 3, 32, 32)
    assert torch.equal(v16[0, 0], native[0, 0]) and torch.equal(v16[0, -1], native[0, -1])    # ends kept
    assert torch.equal(v16[1], native[1, :1].expand(16, -1, -1, -1))                           # weight 0: still
    with pytest.raises(ValueError, match="one emotion"):
        fam.generate(first, torch.ones(n, 2), 10, **kw)


@pytest.mark.parametrize("name", MODELS)
def test_one_model_per_expression(name):
    with pytest.raises(UsageError, match=f"ckpp train --model {name} --emotion happy"):
        get_family(name)(small_cfg(), ["surprise", "happy"])


# ---- training ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_overfit_one_clip_lowers_the_losses(name, data32):
    """The full train step (D_g + G with L1, GAN, HP's landmark L2) on one clip of 10 frames."""
    torch.manual_seed(0)
    fam = get_family(name)(small_cfg(lr=1e-3), ["surprise"]).attach()
    batch = sequence_batch(data32)
    hist = [{k: float(v) for k, v in fam.train_step(batch, s).items()} for s in range(30)]
    first, last = hist[0], np.mean([h["rec"] for h in hist[-3:]])
    assert last < 0.6 * first["rec"], (first["rec"], last)
    if name == "hp":
        assert np.mean([h["lmk"] for h in hist[-3:]]) < 0.3 * first["lmk"]
        # the LSTM, not the true landmarks, now drives generation: the predicted mouth opens
        fam.train_mode(False)
        _, pred = fam.native_with_landmarks(batch["input"], batch["landmarks"][:, 0])
        drop = (pred[:, -1, 57, 1] - pred[:, 0, 57, 1]).mean()
        true = (batch["landmarks"][:, -1, 57, 1] - batch["landmarks"][:, 0, 57, 1]).mean()
        assert drop > 0.5 * true > 0


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_round_trip(name, data32, tmp_path):
    from models.checkpoint import load_run, save_checkpoint

    torch.manual_seed(0)
    fam = get_family(name)(small_cfg(), ["surprise"]).attach()
    batch = sequence_batch(data32)
    for s in range(2):
        fam.train_step(batch, s)
    save_checkpoint(tmp_path / "run", fam, 2)
    loaded, meta = load_run(tmp_path / "run")
    assert type(loaded) is type(fam) and meta["family"] == name and meta["step"] == 2
    fam.train_mode(False)
    kw = gen_kwargs(name, batch, 1)
    a = fam.generate(batch["input"][:1], torch.ones(1, 1), 10, **kw)
    b = loaded.generate(batch["input"][:1], torch.ones(1, 1), 10, **kw)
    assert torch.equal(a, b)


@pytest.fixture(scope="module")
def data64(tmp_path_factory):
    return make_fake_dataset(tmp_path_factory.mktemp("d64") / "data.h5", emotions=("surprise", "happy"),
                             n_clips=3, T=10, size=64)


@pytest.mark.parametrize("name", MODELS)
def test_ckpp_train_then_generate_from_a_photo(name, data64, tmp_path, monkeypatch):
    """`ckpp train --model NAME --emotion surprise DATA --steps 2`, then 10 frames of grace_hopper.jpg through
    the interface `ckpp generate` uses, and the CLI itself."""
    from models.checkpoint import load_run
    from models.generate import generate_video, load_photo

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["train", data64, "--model", name, "--emotion", "surprise", "--steps", "2",
                                    "--batch-size", "2", "--workers", "0", "--quiet"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "runs" / f"{name}-surprise"
    assert (run / "latest").is_file() and (run / "samples" / "latest.png").is_file()
    fam, meta = load_run(run)
    assert meta["family"] == name and meta["emotions"] == ["surprise"]
    photo = load_photo(GRACE)
    video = generate_video(fam, photo, {"surprise": 1.0}, 10)
    assert video.shape == (10, 256, 256, 3) and video.dtype == np.uint8
    still = generate_video(fam, photo, {"surprise": 0.0}, 5)
    assert (still == still[:1]).all()
    out = tmp_path / "out.gif"
    res = CliRunner().invoke(main, ["generate", str(run), GRACE, "--emotion", "surprise", "--frames", "10", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 0


def test_several_emotions_for_a_baseline_is_a_clear_error(data64, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["train", data64, "--model", "hp", "--emotion", "surprise", "--emotion", "happy",
                                    "--steps", "1", "--workers", "0", "--quiet"])
    assert res.exit_code != 0
    assert "per expression" in res.output and "--emotion" in res.output


def test_hp_finds_the_first_landmarks_of_a_photo_crop():
    """Without given landmarks HP runs dlib on the crop itself: close to dlib on the whole photo."""
    from ckpp_tools.crop import crop_image, to_crop
    from models.baselines.hierarchical import first_landmarks
    from models.generate import face_box, load_photo, shrink_box

    photo = load_photo(GRACE)
    box, pts = face_box(photo)
    box = shrink_box(box, 256 / 289)
    crop = crop_image(photo, box, 64)
    truth = (to_crop(pts, box, 64) + 0.5) / 64
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 127.5 - 1
    est = first_landmarks(x, 256 / 289)[0].numpy()
    assert np.abs(est - truth).mean() * 64 < 1.5          # pixels of the 64² crop


@pytest.mark.parametrize("name", MODELS)
def test_resume_reproduces_the_uninterrupted_run(name, data32, tmp_path):
    """Stop at step 2, resume to 4: the same per-step losses as one run of 4 (optimisers, RNG, data stream
    of the baseline's two optimisers and SEQUENCE sampler all restored)."""
    import json

    from models.training_loop import train

    cfg = small_cfg(batch_size=2, num_workers=0, log_every=1, ckpt_every=2, sample_every=100)

    def losses_of(run):
        with open(run / "metrics.jsonl") as fh:
            return [{k: v for k, v in json.loads(line).items() if k not in ("steps_per_s", "samples_per_s")} for line in fh]

    train(cfg.replace(max_steps=4), name, ["surprise"], [data32], tmp_path / "full", progress=False)
    train(cfg.replace(max_steps=2), name, ["surprise"], [data32], tmp_path / "part", progress=False)
    res = train(cfg, name, ["surprise"], [data32], tmp_path / "part", resume=True, overrides={"max_steps": 4},
                progress=False)
    assert res["step"] == 4
    a, b = losses_of(tmp_path / "full"), losses_of(tmp_path / "part")
    assert [r["step"] for r in b] == [1, 2, 3, 4] and "rec" in b[-1] and (name != "hp" or "lmk" in b[-1])
    for ra, rb in zip(a, b):
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=1e-4, abs=1e-6), (ra["step"], k)
