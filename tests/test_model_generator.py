"""The paper's generator, discriminators, losses and checkpoints (CPU, tiny shapes, no data files)."""
import copy

import pytest
import torch

from models import losses
from models.checkpoint import load_run, read_checkpoint, save_checkpoint
from models.config import Config, from_dict, load_config, preset
from models.discriminators import PatchDiscriminator
from models.generator import Generator
from models.ours import OursFamily
from ckpp_tools.errors import CkppError, UsageError

S = 32


def small_cfg(**kw):
    return preset("tiny").replace(image_size=S, levels=5, base_width=4, max_width=16, d_width=8, **kw)


def batch(B=4, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(input=torch.rand(B, 3, S, S, generator=g) * 2 - 1, target=torch.rand(B, 3, S, S, generator=g) * 2 - 1,
                degree=torch.rand(B, generator=g), emotion=torch.randint(0, n, (B,), generator=g),
                mask=(torch.rand(B, 1, S, S, generator=g) > 0.5).float(), landmarks=torch.rand(B, 68, 2, generator=g))


def test_shapes():
    cfg = small_cfg()
    G = Generator(cfg.widths(), 2)
    x = torch.rand(3, 3, S, S) * 2 - 1
    v, k = G(x, torch.rand(3, 2))
    assert v.shape == (3, 3, S, S) and k.shape == (3, 68, 2)
    assert v.abs().max() <= 1 and 0 <= k.min() and k.max() <= 1
    v, k = G(x, torch.rand(3, 5, 2))                   # K degree vectors per image: one encoder pass
    assert v.shape == (3, 5, 3, S, S) and k.shape == (3, 5, 68, 2)
    assert PatchDiscriminator(8)(v[:, 0]).shape == (3, 1, S // 4 - 1, S // 4 - 1)
    paper = preset("paper")
    assert paper.widths() == [64, 128, 256, 512, 512, 512, 512, 512] and paper.image_size == 256


def test_zero_degree_ignores_residual_encoders():
    """F_l = e0_l + Σ a_i e_i,l: with a = 0 the residual encoders have no effect at all."""
    torch.manual_seed(0)
    G = Generator(small_cfg().widths(), 2).eval()
    x = torch.rand(2, 3, S, S) * 2 - 1
    zero = torch.zeros(2, 2)
    before, _ = G(x, zero)
    with torch.no_grad():
        for p in G.residual.parameters():
            p.add_(torch.randn_like(p))
    after, _ = G(x, zero)
    assert torch.equal(before, after)
    with torch.enable_grad():                          # also when every encoder runs (training path)
        again, _ = G(x, zero)
    assert torch.allclose(before, again, atol=1e-6)
    moved, _ = G(x, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert (moved - before).abs().mean() > 1e-3


def test_layerwise_sum_and_batched_degrees_match_separate_passes():
    torch.manual_seed(1)
    G = Generator(small_cfg().widths(), 2).eval()
    x = torch.rand(2, 3, S, S) * 2 - 1
    a = torch.tensor([[[0.3, 0.0], [0.7, 0.2]], [[0.0, 1.0], [0.5, 0.5]]])
    base, res = G.encode(x)
    feats = G.combine(base, res, a)
    manual = base[2].unsqueeze(1) + a[..., 0, None, None, None] * res[0][2].unsqueeze(1) \
        + a[..., 1, None, None, None] * res[1][2].unsqueeze(1)
    assert torch.allclose(feats[2], manual.flatten(0, 1), atol=1e-6)
    together, _ = G(x, a)
    for k in range(2):
        alone, _ = G(x, a[:, k])
        assert torch.allclose(together[:, k], alone, atol=1e-5)


def test_losses():
    real, fake = torch.full((2, 1, 3, 3), 5.0), torch.full((2, 1, 3, 3), -5.0)
    for kind in ("bce", "hinge", "lsgan"):
        good, bad = losses.d_loss(real, fake, kind), losses.d_loss(fake, real, kind)
        assert good < bad
        assert losses.g_loss(real, kind) < losses.g_loss(fake, kind)
    v = torch.rand(2, 3, 4, 4)
    assert losses.temporal(v, v, v) == 0
    assert torch.isclose(losses.temporal(v, v + 0.1, v - 0.2), torch.tensor(0.3))
    p = torch.zeros(2, 68, 2)
    assert torch.isclose(losses.landmark(p, p + 0.1), torch.tensor((136 * 0.01) ** 0.5))


def test_gradient_difference_punishes_blur_not_brightness():
    """The gdl term: 0 for the same edges (also shifted in brightness), > 0 when an edge is blurred away."""
    y = torch.zeros(1, 1, 8, 8)
    y[..., :, 4:] = 1.0                                       # one vertical edge
    assert losses.gradient_difference(y, y) == 0
    assert losses.gradient_difference(y + 0.25, y) < 1e-6     # an L1 would charge 0.25 here
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(y, (1, 1, 1, 1), mode="replicate"), 3, 1)
    assert losses.gradient_difference(blurred, y) > 0.05
    fam = OursFamily(small_cfg(loss_weights={"gdl": 1.0}), ["surprise", "happy"]).attach()
    assert "gdl" in fam.train_step(batch(), 0)


def test_train_step_ablations_and_gan_kinds():
    for kw in ({}, {"use_local_d": False}, {"use_landmarks": False, "use_temporal": False}, {"gan_loss": "hinge"},
               {"gan_loss": "lsgan", "use_global_d": False, "use_local_d": False}):
        fam = OursFamily(small_cfg(**kw), ["surprise", "happy"]).attach()
        out = fam.train_step(batch(), 0)
        assert all(torch.isfinite(torch.as_tensor(v)) for v in out.values())
        if kw.get("use_local_d") is False:
            assert "d_l" not in out and "D_l" not in fam.modules()
        if kw.get("use_temporal") is False:
            assert "tmp" not in out and "lmk" not in out
        if kw.get("use_global_d") is False:
            assert "D" not in fam.optimizers


def test_config_roundtrip_and_errors(tmp_path):
    cfg = preset("paper")
    assert from_dict(cfg.to_dict()) == cfg
    p = tmp_path / "c.json"
    p.write_text('{"preset": "tiny", "batch_size": 3, "loss_weights": {"rec": 50}}')
    c = load_config(str(p))
    assert c.batch_size == 3 and c.loss_weights["rec"] == 50 and c.loss_weights["tmp"] == 10
    p.write_text('{"batch_sise": 3}')
    with pytest.raises(UsageError, match="batch_sise"):
        load_config(str(p))
    with pytest.raises(UsageError, match="multiple of"):
        Config(image_size=60, levels=3)
    with pytest.raises(UsageError, match="tiny"):
        load_config("huge")


def test_checkpoint_roundtrip_and_mismatch_report(tmp_path):
    torch.manual_seed(0)
    fam = OursFamily(small_cfg(), ["surprise", "happy"]).attach()
    fam.train_step(batch(), 0)
    path = save_checkpoint(tmp_path, fam, 1, data={"path": "x.h5", "schema_version": 1})
    assert (tmp_path / "latest").read_text().strip() == "ckpt-00000001.pt"
    ck = torch.load(path, weights_only=True)            # plain data only
    assert ck["family"] == "ours" and ck["emotions"] == ["surprise", "happy"] and ck["step"] == 1
    loaded, meta = load_run(tmp_path)
    fam.train_mode(False)
    x, w = torch.rand(1, 3, S, S) * 2 - 1, torch.tensor([[0.4, 0.6]])
    assert torch.equal(loaded.generate(x, w, 4), fam.generate(x, w, 4))
    assert meta["step"] == 1 and meta["data"]["path"] == "x.h5"
    # a checkpoint whose weights do not fit (one emotion fewer): a clear report, not a torch traceback
    ck2 = copy.deepcopy(ck)
    ck2["modules"]["G"] = {k: v for k, v in ck2["modules"]["G"].items() if not k.startswith("residual.1.")}
    ck2["modules"]["G"]["extra.weight"] = torch.zeros(1)
    torch.save(ck2, tmp_path / "ckpt-00000002.pt")
    (tmp_path / "latest").write_text("ckpt-00000002.pt\n")
    with pytest.raises(CkppError, match=r"missing \(\d+\): residual\.1\.") as e:
        load_run(tmp_path)
    assert "unexpected (1): extra.weight" in str(e.value)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CkppError, match="not a ckpp checkpoint") as e:
        read_checkpoint(tmp_path / "junk.pt")
    assert "junk.pt" in str(e.value)
    with pytest.raises(CkppError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CkppError, match="holds no checkpoint"):
        read_checkpoint(tmp_path / "empty")


def test_runtime_wrapping_is_used_by_train_step():
    """attach() hands DDP/compile wrappers to net(); a compiled module must come back as is (no truth test)."""
    from models.family import Runtime

    fam = OursFamily(small_cfg(), ["surprise"]).attach(Runtime(compile=True, channels_last=True))
    assert type(fam.net("G")).__name__ == "OptimizedModule" and fam.net("G")._orig_mod is fam.G
    assert fam.G.e0.layers[1].conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    fam2 = OursFamily(small_cfg(), ["surprise"]).attach(Runtime(wrap=lambda m: seen.append(m) or m))
    assert set(map(id, seen)) == {id(m) for m in fam2.modules().values()} and set(fam2.optimizers) == {"G", "D"}


class _Evil:
    """Unpickling this runs os.mkdir(marker): what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.mkdir, (self.marker,))


def test_malicious_pickle_is_refused_without_running_and_without_unsafe_advice(tmp_path):
    """Issue 11 item 5: torch refuses it under weights_only=True; the message must say why (it could run code)
    and how to get a proper checkpoint, never torch's advice to load it with weights_only=False."""
    from click.testing import CliRunner

    from ckpp_tools.cli import main
    import cv2
    import numpy as np
    import skimage.data

    marker = tmp_path / "pwned"
    bad = tmp_path / "ckpt-00000001.pt"
    torch.save({"format": "ckpp", "payload": _Evil(str(marker))}, bad)
    with pytest.raises(CkppError) as e:
        read_checkpoint(bad)
    msg = str(e.value)
    assert "weights_only" not in msg and "refused" in msg and "could run code" in msg and str(bad) in msg
    assert "ckpp train" in msg
    assert not marker.exists()
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    r = CliRunner().invoke(main, ["generate", str(tmp_path), str(photo), "--emotion", "happy"])
    assert r.exit_code == 1 and r.exception.__class__ is SystemExit, r.output
    assert "weights_only" not in r.output and "could run code" in r.output, r.output
    assert not marker.exists()
    # random bytes and a truncated real checkpoint
    (tmp_path / "rand.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CkppError, match="not a ckpp checkpoint"):
        read_checkpoint(tmp_path / "rand.pt")
    torch.save({"format": "ckpp", "w": torch.zeros(1000)}, tmp_path / "cut.pt")
    data = (tmp_path / "cut.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CkppError, match="damaged checkpoint"):
        read_checkpoint(tmp_path / "cut.pt")


def test_local_discriminator_may_also_see_the_brows_and_eyes():
    """local_region="mouth+eyes": D_l's input is the mouth mask joined with the box of the brows and eyes."""
    lm = torch.zeros(1, 68, 2)                                  # iBUG-68 order
    lm[0, :, 0], lm[0, :, 1] = 0.5, 0.8                      # everything at the chin ...
    lm[0, 17:27] = torch.tensor([[0.3, 0.35], [0.7, 0.35]]).repeat(5, 1)      # ... but the brows
    lm[0, 36:48] = torch.tensor([[0.35, 0.45], [0.65, 0.45]]).repeat(6, 1)    # ... and the eyes
    box = losses.brows_eyes_box(lm, 64)
    ys, xs = torch.nonzero(box[0, 0], as_tuple=True)
    assert box.shape == (1, 1, 64, 64) and set(box.unique().tolist()) == {0.0, 1.0}
    assert 0.22 * 64 < xs.min() < 0.3 * 64 and 0.7 * 64 < xs.max() < 0.78 * 64
    assert 0.27 * 64 < ys.min() < 0.35 * 64 and 0.45 * 64 < ys.max() < 0.53 * 64
    assert box[0, 0, int(0.8 * 64)].sum() == 0                 # not the mouth
    with pytest.raises(CkppError, match="local_region"):
        small_cfg(local_region="eyes")
    fam = OursFamily(small_cfg(local_region="mouth+eyes"), ["surprise", "happy"]).attach()
    assert {"d_l", "g_l"} <= set(fam.train_step(batch(), 0))
