"""Motion output (config output="warp", models/motion_output.py): identity at zero motion, resolution-free flow,
the full-resolution path of `ckpp generate`, paste-back that leaves frame 0 = the photo, and the paper's pixel
decoder unchanged."""
import numpy as np
import pytest
import torch

from ckpp_tools.faces import PHOTOS
from models import motion_output as mo
from models.checkpoint import load_run, read_checkpoint, restore_across_outputs, save_checkpoint
from models.config import Config, preset
from models.family import Runtime
from models.generate import generate_video
from models.generator import Generator
from models.ours import OursFamily

torch.set_num_threads(1)
S = 32


def small_cfg(**kw):
    return preset("tiny").replace(image_size=S, levels=5, base_width=4, max_width=16, d_width=8, batch_size=2,
                                  num_workers=0, **kw)


def family(output="warp", seed=0, jitter=0.0):
    torch.manual_seed(seed)
    fam = OursFamily(small_cfg(output=output), ["surprise"])
    if jitter:                                    # a last layer that moves things (an untrained one is identity)
        with torch.no_grad():
            fam.G.ups[-1].conv.weight.normal_(0, jitter)
    fam.attach(Runtime(), train=False)
    return fam


def pattern(n, size):
    g = torch.Generator().manual_seed(size)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_zero_flow_mask_one_is_the_input():
    for size in (64, 256):
        x = pattern(2, size)
        zero = torch.zeros(2, 2, size, size)
        out = mo.compose(x, zero, torch.ones(2, 1, size, size), torch.rand(2, 3, size, size))
        assert torch.equal(out, x)
    x = pattern(2, 300)                           # a crop side that is no power of two, a field at the network's size
    flow = torch.zeros(2, 2, 8, 8)
    flow[1, 0] = 0.1
    out = mo.warp(x, flow)
    assert torch.equal(out[0], x[0]) and not torch.allclose(out[1], x[1], atol=0.1)
    # an untrained warp generator is (almost) the identity: zero last layer, mask sigmoid(MASK_BIAS)
    G = Generator([4, 8, 8], 1, output="warp").eval()
    x = pattern(2, 8)
    v, _, (flow, mask, _) = G(x, torch.rand(2, 1), with_motion=True)
    assert flow.abs().max() == 0 and torch.allclose(v, mask * x) and mask.min() > 0.98


def test_known_flow_moves_3px_at_64_and_12px_at_256():
    flow64 = torch.zeros(1, 2, 64, 64)
    flow64[:, 0] = -3 * 2 / 64                    # backward flow: pixel x shows x - 3, the image moves right 3 px
    x = pattern(1, 64)
    out = mo.warp(x, flow64)
    assert torch.allclose(out[..., 3:], x[..., :-3], atol=1e-5)
    assert not torch.allclose(out, x, atol=0.1)
    # the same field (at the network's 64²) applied through the generation path to a 256² crop of the same face
    big = pattern(1, 256)
    flows = torch.stack([torch.zeros(2, 64, 64), flow64[0]])      # frame 0: no motion; frame 1: the shift
    masks, res = torch.ones(2, 1, 64, 64), torch.zeros(2, 3, 64, 64)
    frames = mo.render(big, *mo.relative(flows, masks, res, 256))
    assert torch.equal(frames[0], big[0])
    assert torch.allclose(frames[1][..., 12:], big[0][..., :-12], atol=1e-5)
    assert not torch.allclose(frames[1][..., 9:], big[0][..., :-9], atol=0.1)
    # ... and through `ckpp generate`'s own path (face_geometry.paste_motion on the 256² crop, bicubic)
    from models.generate import _apply_motion
    from ckpp_tools.face_geometry import IDENTITY

    crop = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    video = _apply_motion(crop, IDENTITY, flows, masks, res, 256, 0.0)
    assert np.array_equal(video[0], crop)
    assert np.array_equal(video[1][:, 12:], crop[:, :-12]) and not np.array_equal(video[1][:, 9:], crop[:, :-9])


def test_1024_photo_gives_a_face_of_its_own_size():
    from ckpp_tools.face_geometry import MIN_OUTPUT, crop_scale, face_crop

    photo = np.ascontiguousarray(np.kron(PHOTOS["astronaut"](), np.ones((2, 2, 1), np.uint8)))   # 1024² photo
    fam = family(jitter=0.002)
    found = {}
    video = generate_video(fam, photo, {"surprise": 1.0}, 3, start="as-is", report=found)
    native = S / crop_scale(face_crop(photo, S, fam.cfg.crop_fraction).matrix)
    assert native >= MIN_OUTPUT and video.shape == (3, round(native), round(native), 3)
    assert found["size"] == round(native)
    assert not np.array_equal(video[0], video[-1])
    small = generate_video(fam, photo, {"surprise": 1.0}, 2, start="as-is", size=300)
    assert small.shape == (2, 300, 300, 3)
    # pixel models keep the network's frames scaled up
    assert generate_video(family("pixels"), photo, {"surprise": 1.0}, 2, start="as-is").shape == (2, 256, 256, 3)


def test_paste_back_frame0_is_the_photo_and_no_seam():
    from ckpp_tools.face_geometry import face_crop, output_size, resize_matrix

    photo = PHOTOS["astronaut"]()
    fam = family(jitter=0.003)
    video = generate_video(fam, photo, {"surprise": 1.0}, 4, paste=True, start="as-is")
    assert video.shape == (4,) + photo.shape
    mse = np.mean((video[0].astype(np.float64) - photo) ** 2)
    assert mse == 0 or 10 * np.log10(255 ** 2 / mse) >= 40
    assert (video[-1] != photo).any(axis=-1).mean() > 0.01          # the face did move
    # no seam: at the crop's border (and outside it) every frame is the photo
    fc = face_crop(photo, S, fam.cfg.crop_fraction)
    out = output_size(fc.matrix, S)
    inv = np.linalg.inv(np.vstack([resize_matrix(fc.matrix, S, out), [0, 0, 1]]))
    t = np.linspace(0, out - 1, 200)
    edge = np.concatenate([np.stack([t, np.zeros_like(t)], 1), np.stack([t, np.full_like(t, out - 1)], 1),
                           np.stack([np.zeros_like(t), t], 1), np.stack([np.full_like(t, out - 1), t], 1)])
    xy = np.round(edge @ inv[:2, :2].T + inv[:2, 2]).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < photo.shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < photo.shape[0])
    xy = xy[inside]
    for frame in video:
        assert np.abs(frame[xy[:, 1], xy[:, 0]].astype(int) - photo[xy[:, 1], xy[:, 0]]).max() <= 1


def test_paper_pixel_output_unchanged():
    """The paper's decoder: default and `paper` are pixel output, and the same seed gives the same weights and
    frames as before the warp output existed (reference values recorded from the code before the change)."""
    assert Config().output == "pixels" and preset("paper").output == "pixels"
    torch.manual_seed(0)
    g = Generator([4, 8, 8], 2, landmark_head=True).eval()
    sd = g.state_dict()
    assert len(sd) == 46 and sd["ups.2.conv.weight"].shape == (8, 3, 4, 4)
    assert abs(sum(float(v.double().abs().sum()) for v in sd.values()) - 203.857417) < 1e-4
    x = torch.linspace(-1, 1, 2 * 3 * 8 * 8).view(2, 3, 8, 8).sin()
    with torch.no_grad():
        y, lmk = g(x, torch.tensor([[0.3, 0.7], [1.0, 0.0]]))
    ref = [0.001071, 0.010959, 0.001364, -0.002365, -0.014469, -0.010639, -0.003333, 0.000802, -0.010366,
           -0.001142, 0.006891, 0.005842, 0.000254, -0.002229]
    assert np.allclose(y.flatten()[::29].numpy(), ref, atol=2e-6)
    # the shipped pixel weights (shipped as `pretrained` before issue 22) give the same frames as before
    fam, _ = load_run("pretrained:ours-surprise-pixels")
    assert fam.G.output == "pixels"
    x = torch.linspace(-1, 1, 3 * 64 * 64).view(1, 3, 64, 64).mul(7).sin()
    v = fam.generate(x, torch.tensor([[1.0]]), 3)
    ref = [-0.38528, 0.774736, 0.884812, -0.624546, -0.843792, -0.04223, 0.92053, 0.581641, -0.875846]
    assert np.allclose(v.flatten()[::1231].numpy()[:9], ref, atol=2e-5)
    assert load_run("pretrained")[0].G.output == "warp" and preset("demo").output == "warp"


def test_checkpoint_round_trip_and_init_from_pixels(tmp_path):
    fam = family(jitter=0.01)
    save_checkpoint(tmp_path / "run", fam, 7)
    back, meta = load_run(tmp_path / "run")
    assert back.G.output == "warp" and meta["config"]["output"] == "warp"
    x = pattern(1, S)
    w = torch.ones(1, 1)
    assert torch.equal(fam.generate(x, w, 3), back.generate(x, w, 3))
    # pixel weights into a warp generator: everything but the decoder's last layer, named
    pix = family("pixels", seed=1)
    save_checkpoint(tmp_path / "pix", pix, 3)
    warp = OursFamily(small_cfg(output="warp"), ["surprise"])
    skipped = restore_across_outputs(warp, read_checkpoint(tmp_path / "pix"))
    assert skipped == ["G.ups.4.conv.weight", "G.ups.4.conv.bias"]
    assert torch.equal(warp.G.e0.layers[0].conv.weight, pix.G.e0.layers[0].conv.weight)
    assert torch.equal(warp.D_g.net[0].weight, pix.D_g.net[0].weight)
    assert warp.G.ups[-1].conv.weight.abs().max() == 0


def test_flow_landmark_loss_is_zero_for_the_true_field():
    from models import losses

    flow = torch.zeros(2, 2, 64, 64)
    flow[:, 0] = -3 * 2 / 64                       # the image moves right by 3 px: target x+3 comes from input x
    lm0 = torch.rand(2, 68, 2, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    lmt = lm0 + torch.tensor([3 / 64, 0.0])
    assert float(losses.flow_landmarks(flow, lmt, lm0)) < 1e-5
    assert float(losses.flow_landmarks(torch.zeros_like(flow), lmt, lm0)) == pytest.approx(1.5, abs=1e-4)


def test_mask_is_taught_where_the_mouth_opened():
    from models import losses

    lm0 = torch.full((1, 68, 2), 0.5)
    ring = torch.linspace(0, 2 * np.pi, 9)[:-1]
    lm0[0, 60:68] = torch.stack([0.5 + 0.2 * ring.cos(), 0.5 + 0.001 * ring.sin()], 1)     # lips shut
    lmt = lm0.clone()
    lmt[0, 60:68, 1] = 0.5 + 0.1 * ring.sin()                                              # an open ellipse
    cav = losses.inner_mouth(lmt, 64)
    assert losses.inner_mouth(lm0, 64).sum() == 0 and abs(float(cav.sum()) - 2 * 2 ** 0.5 * 0.2 * 0.1 * 64 ** 2) < 8   # the octagon's area
    mask = torch.ones(1, 1, 64, 64)
    assert float(losses.mask_in_cavity(mask, lmt, lm0)) == 1.0
    assert float(losses.mask_in_cavity(mask * (1 - cav), lmt, lm0)) == 0.0
    assert float(losses.mask_in_cavity(mask, lm0, lm0)) == 0.0           # nothing opened: no term


def test_cavity_log_loss_keeps_its_gradient_at_the_saturated_start():
    from models import losses

    lm0 = torch.full((1, 68, 2), 0.5)
    ring = torch.linspace(0, 2 * np.pi, 9)[:-1]
    lm0[0, 60:68] = torch.stack([0.5 + 0.2 * ring.cos(), 0.5 + 0.001 * ring.sin()], 1)
    lmt = lm0.clone()
    lmt[0, 60:68, 1] = 0.5 + 0.1 * ring.sin()
    grads = {}
    for name, fn in (("mean", losses.mask_in_cavity), ("log", losses.mask_cavity_log)):
        logit = torch.full((1, 1, 64, 64), mo.MASK_BIAS, requires_grad=True)
        fn(torch.sigmoid(logit), lmt, lm0).backward()
        grads[name] = float(logit.grad.abs().sum())
    # the plain mean's gradient through sigmoid(4) is ~0.018; the log term's is the mask itself (~0.98)
    assert grads["log"] > 40 * grads["mean"] > 0
    assert float(losses.mask_cavity_log(torch.full((1, 1, 64, 64), 0.5), lmt, lm0)) == pytest.approx(np.log(2), 1e-5)
    assert float(losses.mask_cavity_log(torch.ones(1, 1, 64, 64), lm0, lm0)) == 0.0       # nothing opened


def test_change_loss_opens_the_mask_only_where_the_target_needs_new_texture():
    """mask_change_log: where the target differs from the moved input (a darker band, a furrow) the saturated mask
    is pushed open with a live gradient; a one-pixel seam of misalignment and unchanged skin cost nothing."""
    from models import losses

    moved = pattern(1, 32)
    target = moved.clone()
    target[..., 8:16, 8:24] -= 0.5                              # new texture: a darker band
    change = losses.change_map(target, moved)
    assert change[0, 0, 10:14, 10:22].min() == 1.0 and change[0, 0, 22:, :].max() == 0.0
    seam = moved.clone()
    seam[..., 20, :] += 0.1                                     # a faint one-pixel line: 3×3 mean 0.033 ≈ floor
    assert losses.change_map(seam, moved).max() < 0.05
    logit = torch.full((1, 1, 32, 32), mo.MASK_BIAS, requires_grad=True)
    loss = losses.mask_change_log(torch.sigmoid(logit), target, moved)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(-np.log(1 - torch.sigmoid(torch.tensor(mo.MASK_BIAS)).item()), 1e-4)
    g = logit.grad[0, 0]
    assert g[10:14, 10:22].min() > 0 and float(g[22:].abs().max()) == 0.0       # gradient descent lowers the mask
    assert float(losses.mask_change_log(torch.sigmoid(logit.detach()), moved, moved)) == 0.0


def test_delta_residual_is_added_to_the_moved_face():
    x = pattern(1, 16)
    zero = torch.zeros(1, 2, 16, 16)
    delta = torch.full((1, 3, 16, 16), -0.5)
    # a colour residual replaces the face where the mask is 0; a delta darkens the face's own pixels
    assert torch.allclose(mo.compose(x, zero, torch.zeros(1, 1, 16, 16), delta), delta)
    assert torch.allclose(mo.compose(x, zero, torch.zeros(1, 1, 16, 16), delta, additive=True), x - 0.5)
    assert torch.equal(mo.compose(x, zero, torch.ones(1, 1, 16, 16), delta, additive=True), x)
    raw = torch.zeros(1, 6, 4, 4)
    raw[:, 3:] = 10.0
    assert torch.allclose(mo.split(raw, "delta")[2], torch.full((1, 3, 4, 4), mo.DELTA_SCALE))
    # the generation path: frame 0 the crop, a darkened mouth region on the person's own pixels
    from ckpp_tools.face_geometry import IDENTITY
    from models.generate import _apply_motion

    crop = np.random.default_rng(1).integers(60, 200, (64, 64, 3), dtype=np.uint8)
    masks = torch.ones(2, 1, 16, 16)
    masks[1, :, 8:12, 4:12] = 0.0                                  # the mask opens at the peak only there
    res = torch.zeros(2, 3, 16, 16)
    res[1] = -0.4
    video = _apply_motion(crop, IDENTITY, torch.zeros(2, 2, 16, 16), masks, res, 64, 0.0, additive=True)
    assert np.array_equal(video[0], crop)
    inside = video[1, 36:44, 20:44].astype(int) - crop[36:44, 20:44]
    assert np.all(inside <= -40) and np.array_equal(video[1, :24], crop[:24])
    # a delta generator starts as the identity too and round-trips its mode through a checkpoint
    G = Generator([4, 8, 8], 1, output="warp", residual="delta").eval()
    v, _, (flow, mask, r) = G(x[:, :, :8, :8], torch.rand(1, 1), with_motion=True)
    assert flow.abs().max() == 0 and r.abs().max() == 0 and torch.equal(v, x[:, :, :8, :8])


def test_delta_residual_keeps_only_its_brightness_so_a_grey_photo_stays_grey():
    # the delta's hue is learnt on the training people's skin (a blue cavity on a grey photo); its luminance is
    # what the frame gets, on every channel, so a grey reading of the frame (the judge's) is unchanged
    import cv2

    from ckpp_tools.face_geometry import IDENTITY
    from models.generate import _apply_motion, luma_change

    rng = np.random.default_rng(2)
    grey = np.repeat(rng.integers(60, 200, (64, 64, 1), dtype=np.uint8), 3, axis=2)
    masks = torch.ones(2, 1, 16, 16)
    masks[1, :, 8:12, 4:12] = 0.0
    res = torch.zeros(2, 3, 16, 16)
    res[1, 0], res[1, 1], res[1, 2] = -0.5, -0.1, 0.3                    # a dark, blue-ish change
    video = _apply_motion(grey, IDENTITY, torch.zeros(2, 2, 16, 16), masks, res, 64, 0.0, additive=True)
    peak = video[1].astype(int)
    assert np.array_equal(peak[..., 0], peak[..., 1]) and np.array_equal(peak[..., 1], peak[..., 2])
    inside = peak[36:44, 20:44, 0] - grey[36:44, 20:44, 0]
    y = 127.5 * (0.299 * -0.5 + 0.587 * -0.1 + 0.114 * 0.3)
    assert np.all(np.abs(inside - y) <= 1)                               # the change's own luminance
    colour = rng.integers(0, 256, (5, 3)).astype(np.float32)
    delta = rng.normal(0, 40, (5, 3)).astype(np.float32)
    to_grey = lambda a: cv2.cvtColor(a.reshape(1, -1, 3), cv2.COLOR_RGB2GRAY).ravel()   # noqa: E731
    assert np.allclose(to_grey(colour + delta), to_grey(colour + luma_change(delta)), atol=1e-3)


def test_train_step_with_warp_regularisers():
    cfg = small_cfg(output="warp", loss_weights={"flow_tv": 1.0, "mask_prior": 1.0, "flow_lmk": 1.0,
                                                 "mask_cavity": 1.0, "mask_change_log": 1.0})
    assert preset("paper").weight("flow_tv") == 0 and cfg.weight("flow_tv") == 1.0
    torch.manual_seed(0)
    fam = OursFamily(cfg, ["surprise", "happy"])
    fam.attach(Runtime(), train=True)
    g = torch.Generator().manual_seed(0)
    b = dict(input=torch.rand(2, 3, S, S, generator=g) * 2 - 1, target=torch.rand(2, 3, S, S, generator=g) * 2 - 1,
             degree=torch.rand(2, generator=g), emotion=torch.tensor([0, 1]),
             mask=torch.ones(2, 1, S, S), landmarks=torch.rand(2, 68, 2, generator=g),
             input_landmarks=torch.rand(2, 68, 2, generator=g))
    out = fam.train_step(b, 0)
    assert {"flow_tv", "mask_prior", "flow_lmk", "mask_cavity", "mask_change_log", "rec", "tmp", "lmk", "g_g",
            "g_l"} <= set(out)
    assert 0 < float(out["mask_prior"]) < 0.05
    w = fam.G.ups[-1].conv.weight                               # (cin, 6, 4, 4): the zero-initialised layer learns,
    assert w[:, :2].abs().max() > 0 and w[:, 2:].abs().max() > 0  # the flow channels included


def test_benchmark_photos_measures_warp_models_at_256(tmp_path):
    import imageio.v3 as iio

    from models import in_the_wild as iw
    from models.benchmark import LoadedModel
    from models.generate import MOTION_SIZE

    (tmp_path / "p").mkdir()
    iio.imwrite(tmp_path / "p" / "astronaut.png", PHOTOS["astronaut"]())
    fam = family(jitter=0.002)
    models = {"ours": {"surprise": LoadedModel(key="ours", family=fam, run="warp", checkpoint=None)}}
    (tmp_path / "out").mkdir()
    res = iw.run_photos(photo_dirs=[str(tmp_path / "p")], models=models, emotions=["surprise"],
                        out_dir=str(tmp_path / "out"), device=torch.device("cpu"), n_frames=3, identity=False,
                        n_gifs=1, progress=False, warn=lambda m: None)
    assert res["models"]["ours"]["frame_size"] == MOTION_SIZE and res["models"]["ours"]["image_size"] == S
    row = res["rows"][0]
    assert row["detection_rate"] == 1.0 and row["l1_at_zero"] == 0.0     # frame 0 is the 256² crop itself


def test_cli_size_option(tmp_path):
    import imageio.v3 as iio
    from click.testing import CliRunner

    from ckpp_tools.cli import main

    save_checkpoint(tmp_path / "run", family(jitter=0.002), 1)
    iio.imwrite(tmp_path / "a.png", PHOTOS["astronaut"]())
    res = CliRunner().invoke(main, ["generate", str(tmp_path / "run"), str(tmp_path / "a.png"), "--emotion",
                                    "surprise", "--frames", "2", "--size", "5000", "-o", str(tmp_path / "x.gif")])
    assert res.exit_code != 0 and "--size 5000" in res.output and "16…2048" in res.output
    res = CliRunner().invoke(main, ["generate", str(tmp_path / "run"), str(tmp_path / "a.png"), "--emotion",
                                    "surprise", "--frames", "2", "--size", "320", "-o", str(tmp_path / "x.gif")])
    assert res.exit_code == 0, res.output
    assert "320x320" in res.output and iio.imread(tmp_path / "x.gif").shape[1:3] == (320, 320)


def test_benchmark_photos_gives_the_model_what_generate_gives_it(tmp_path, monkeypatch):
    """One path from photo to video: with a neutral start, `benchmark --photos` hands the network the very crops
    (and full-resolution crops) `ckpp generate` hands it (it once warped the network's crop bilinear, generate bicubic)."""
    import imageio.v3 as iio

    from models import generate as gen
    from models import in_the_wild as iw
    from models.benchmark import LoadedModel

    (tmp_path / "p").mkdir()
    photo = PHOTOS["astronaut"]()
    iio.imwrite(tmp_path / "p" / "astronaut.png", photo)
    fam = family(jitter=0.002)
    seen, real = [], gen.animate
    monkeypatch.setattr(gen, "animate", lambda f, crops, w, n, **kw: seen.append((crops, kw)) or real(f, crops, w, n, **kw))
    (tmp_path / "out").mkdir()
    iw.run_photos(photo_dirs=[str(tmp_path / "p")], models={"ours": {"surprise": LoadedModel(
        key="ours", family=fam, run="warp", checkpoint=None)}}, emotions=["surprise"], out_dir=str(tmp_path / "out"),
        device=torch.device("cpu"), n_frames=3, identity=False, n_gifs=0, progress=False, warn=lambda m: None,
        starts=("neutral",))
    gen.generate_video(fam, photo, {"surprise": 1.0}, 3, start="neutral", size=gen.MOTION_SIZE)
    (bench, bkw), (cli, ckw) = seen
    assert np.array_equal(bench[0], cli[0])                   # the network's crop (was up to 3 levels apart)
    d = np.abs(bkw["crops_hr"][0].astype(int) - ckw["crops_hr"][0])
    assert d.max() <= 1 and (d > 0).mean() < 1e-3             # the moved crop: the same warp (1 level in 0.01%)
