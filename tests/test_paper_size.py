"""The paper config at its real size on CPU: 289² stored frames -> 256² crops, widths 64…512, 8 levels.

One training step at batch 1 (the cheapest that still builds the whole paper model) catches shape bugs that
the tiny 6-level configs cannot: the innermost 1×1 level, the 8 skip connections, the landmark head at
S/2 and the patch logits of D_g / D_l at 256². The GPU figures for this config come from
benchmarks/gpu_check.sh, not from tests.
"""
import torch

from models.config import preset
from models.data import ClipDataset, collate, to_model_batch
from models.family import Runtime
from models.ours import OursFamily
from tests.fakes import make_fake_dataset


def test_paper_config_one_train_step_at_256(tmp_path):
    cfg = preset("paper").replace(batch_size=1)
    assert (cfg.image_size, cfg.levels, cfg.widths()[0], cfg.widths()[-1]) == (256, 8, 64, 512)
    path = make_fake_dataset(tmp_path / "paper.h5", n_clips=1, T=3, size=289, compression="gzip")
    ds = ClipDataset([path], ["surprise"], "train", image_size=cfg.image_size, crop_fraction=cfg.crop_fraction)
    assert ds.stored_size[0] == 289
    batch = to_model_batch(collate([ds[0]]), "cpu")
    assert batch["input"].shape == batch["target"].shape == (1, 3, 256, 256)
    assert batch["mask"].shape == (1, 1, 256, 256) and batch["landmarks"].shape == (1, 68, 2)

    torch.manual_seed(0)
    fam = OursFamily(cfg, ["surprise"]).attach(Runtime(), train=True)
    assert set(fam.modules()) == {"G", "D_g", "D_l"}
    seen = {}                                              # first output shape of each encoder level and D

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, tuple(output.shape))     # returns None: the output is left alone
        return hook

    hooks = [layer.register_forward_hook(record(f"e0.{j}")) for j, layer in enumerate(fam.G.e0.layers)]
    hooks += [fam.modules()[k].register_forward_hook(record(k)) for k in ("D_g", "D_l")]
    before = {k: p.detach().clone() for k, p in fam.G.named_parameters() if k.startswith(("ups.7", "head"))}
    out = fam.train_step(batch, 0)
    for h in hooks:
        h.remove()

    assert [seen[f"e0.{j}"] for j in range(8)] == [(1, w, 256 >> (j + 1), 256 >> (j + 1))
                                                    for j, w in enumerate(cfg.widths())]   # ... down to 512×1×1
    assert seen["D_g"] == seen["D_l"] == (2, 1, 63, 63)   # real + fake in one batch, 63×63 patch logits
    assert set(out) >= {"d_g", "d_l", "g_g", "g_l", "rec", "tmp", "lmk", "g_total"}
    assert all(torch.isfinite(v).all() for v in out.values())
    moved = {k for k, p in fam.G.named_parameters() if k in before and not torch.equal(p, before[k])}
    assert moved == set(before)                            # the outermost up layer and the landmark head learnt

    with torch.no_grad():                                  # a whole 3-frame video in one batched pass
        video = fam.generate(batch["input"], torch.ones(1, 1), 3)
    assert video.shape == (1, 3, 3, 256, 256) and torch.isfinite(video).all()
