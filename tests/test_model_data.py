"""models.data: contract reading, PAIR / SEQUENCE samples, consistent crop+flip, resumable sampling, data discovery."""
import itertools
import os

import h5py
import numpy as np
import pytest
import torch

from ckpp_tools.errors import CkppError, UsageError
from models.data import ClipDataset, DrawSampler, discover_data, make_loader, to_model_batch
from tests.fakes import make_fake_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    return make_fake_dataset(d / "out.h5", emotions=("surprise", "happy"), n_clips=4, T=8, size=72, shard=True)


def test_pair_samples(data):
    ds = ClipDataset([data], ["surprise", "happy"], "train", image_size=64)
    assert len(ds) == 4 and ds.counts == {"surprise": 2, "happy": 2}
    plain = ClipDataset([data], ["surprise"], "train", image_size=64, augment=False, target="peak")
    s = plain[0]
    assert s["input"].shape == (64, 64, 3) and s["input"].dtype == np.uint8 and s["mask"].shape == (64, 64)
    assert s["degree"] == 1.0 and s["emotion"] == 0
    with h5py.File(data) as f:                         # input is the onset frame, centre crop 64 of 72
        cid = plain.clips[0][1]
        onset = f["clips"][cid]["frames"][0]
        c = round(72 * 256 / 289)
        o = (72 - c) // 2
        import cv2
        expect = cv2.resize(onset[o:o + c, o:o + c], (64, 64), interpolation=cv2.INTER_LINEAR)
        assert np.abs(s["input"].astype(int) - expect).max() <= 1
        lm = f["clips"][cid]["landmarks"][-1]
    assert np.allclose(s["landmarks"], (lm - o + 0.5) / c, atol=1e-5)
    degrees = set()
    for i in range(40):
        s = ds[(i % 4, i)]
        degrees.add(float(s["degree"]))
        lm = s["landmarks"]
        assert lm.min() > -0.1 and lm.max() < 1.1
        # crop+flip identical for image, mask and landmarks: the mask sits on the mouth points, and index
        # permutation keeps the image-left mouth corner (48) left of the right one (54) after a flip
        ys, xs = np.nonzero(s["mask"])
        mouth = lm[48:68] * 64
        assert abs(xs.mean() - mouth[:, 0].mean()) < 3 and abs(ys.mean() - mouth[:, 1].mean()) < 3
        assert lm[48, 0] < lm[54, 0] and lm[36, 0] < lm[45, 0]
    assert len(degrees) > 3                               # random target frames


def test_flip_mirrors_image_and_landmarks(data):
    ds = ClipDataset([data], ["surprise"], "train", image_size=64)
    flips = {}
    for draw in range(30):
        s = ds[(0, draw)]
        rng = np.random.default_rng([0, draw])
        rng.integers(8)
        rng.integers(0, 2, size=2)
        flips[draw] = rng.random() < 0.5
    assert any(flips.values()) and not all(flips.values())
    noflip = ClipDataset([data], ["surprise"], "train", image_size=64, flip=False)
    for draw in range(30):
        a, b = ds[(0, draw)], noflip[(0, draw)]
        if flips[draw]:
            assert np.array_equal(a["input"], b["input"][:, ::-1])
            assert np.allclose(a["landmarks"][:, 0], 1 - b["landmarks"][np.asarray(__import__("ckpp_tools.schema", fromlist=["x"]).FLIP_68), 0], atol=1e-6)
        else:
            assert np.array_equal(a["input"], b["input"])


def test_one_sided_expressions_are_never_mirrored(tmp_path):
    # contempt is made on one side; a mirrored clip would teach the other side and the model averages to nothing
    d = make_fake_dataset(tmp_path / "c.h5", emotions=("contempt", "happy"), n_clips=4, T=8, size=72)
    ds = ClipDataset([d], ["contempt", "happy"], "train", image_size=64)
    noflip = ClipDataset([d], ["contempt", "happy"], "train", image_size=64, flip=False)
    mirrored = {"contempt": 0, "happy": 0}
    for i in range(len(ds)):
        for draw in range(12):
            a, b = ds[(i, draw)], noflip[(i, draw)]
            name = ds.emotions[int(a["emotion"])]
            mirrored[name] += not np.array_equal(a["input"], b["input"])
    assert mirrored["contempt"] == 0 and mirrored["happy"] > 0


def test_sequence_samples(data):
    ds = ClipDataset([data], ["happy"], "train", image_size=64, clip_frames=10)
    s = ds[0]
    assert s["frames"].shape == (10, 64, 64, 3) and s["landmarks"].shape == (10, 68, 2) and s["masks"].shape == (10, 64, 64)
    assert s["degrees"][0] == 0 and s["degrees"][-1] == 1 and np.all(np.diff(s["degrees"]) >= 0)
    b = to_model_batch(torch.utils.data.default_collate([s, ds[1]]), "cpu")
    assert b["frames"].shape == (2, 10, 3, 64, 64) and b["masks"].shape == (2, 10, 1, 64, 64)
    assert torch.equal(b["input"], b["frames"][:, 0]) and b["frames"].min() >= -1 and b["frames"].max() <= 1


def test_loader_is_deterministic_and_resumable(data):
    ds = ClipDataset([data], ["surprise", "happy"], "train", image_size=64)
    full = list(itertools.islice(DrawSampler(4, seed=3), 14))
    assert list(itertools.islice(DrawSampler(4, seed=3, start=6), 8)) == full[6:]
    assert sorted(c for c, _ in full[:4]) == [0, 1, 2, 3]            # each epoch a permutation
    r0 = list(itertools.islice(DrawSampler(5, seed=1, rank=0, world_size=2), 3))
    r1 = list(itertools.islice(DrawSampler(5, seed=1, rank=1, world_size=2), 3))
    assert not {d for _, d in r0} & {d for _, d in r1}                # ranks draw different samples
    b0 = next(iter(make_loader(ds, 4, 0, seed=5)))
    b2 = next(iter(make_loader(ds, 4, 2, seed=5)))                   # same batch whatever the worker count
    assert all(torch.equal(b0[k], b2[k]) for k in b0)
    batch = to_model_batch(b0, "cpu", channels_last=True)
    assert batch["input"].is_contiguous(memory_format=torch.channels_last) and batch["input"].dtype == torch.float32


def test_emotion_repeats_draw_an_expression_more_often(data):
    """Config.emotion_repeats: each epoch lists a repeated expression's clips k times, still a resumable stream."""
    ds = ClipDataset([data], ["surprise", "happy"], "train", image_size=64)
    order = ds.epoch_order({"happy": 3})
    happy = [i for i, c in enumerate(ds.clips) if ds.emotions[c[2]] == "happy"]
    assert len(order) == 8 and all(order.count(i) == (3 if i in happy else 1) for i in range(4))
    full = list(itertools.islice(DrawSampler(4, seed=3, order=order), 20))
    assert sorted(c for c, _ in full[:8]) == sorted(order)               # an epoch is a permutation of the order
    assert list(itertools.islice(DrawSampler(4, seed=3, order=order, start=11), 9)) == full[11:]
    assert len({d for _, d in full}) == 20                              # every draw its own crop/flip/target seed
    drawn = [b["emotion"].tolist() for b in itertools.islice(iter(make_loader(ds, 8, 0, seed=1, order=order)), 3)]
    assert sum(e == 1 for b in drawn for e in b) == 18                   # 3 epochs of 8: 6 happy draws each
    with pytest.raises(UsageError, match="emotion_repeats names anger, which this run does not train"):
        ds.epoch_order({"anger": 2})


def test_emotion_repeats_must_be_whole_numbers():
    from models.config import preset
    with pytest.raises(UsageError, match="emotion_repeats.*anger: 1.5 is not a whole number"):
        preset("tiny").replace(emotion_repeats={"anger": 1.5})
    assert preset("tiny").replace(emotion_repeats={"anger": 3}).to_dict()["emotion_repeats"] == {"anger": 3}


def test_missing_emotion_lists_what_the_file_has(data):
    with pytest.raises(CkppError, match=r"no accepted 'train' clips of anger; it has: happy \(2\), surprise \(2\)"):
        ClipDataset([data], ["anger"], "train")


def test_discover_data(tmp_path, monkeypatch):
    monkeypatch.delenv("CKPP_DATA", raising=False)
    with pytest.raises(CkppError, match="no prepared data file here") as e:
        discover_data(None, tmp_path)
    assert "ckpp prepare" in str(e.value)
    one = make_fake_dataset(tmp_path / "a.h5", n_clips=1, T=3, size=32, shard=True)   # + shard a-00000.h5
    (tmp_path / "notes.h5").write_bytes(b"junk")
    assert discover_data(None, tmp_path) == [one]
    make_fake_dataset(tmp_path / "b.h5", n_clips=1, T=3, size=32)
    with pytest.raises(CkppError, match="several prepared data files here: a.h5, b.h5"):
        discover_data(None, tmp_path)
    monkeypatch.setenv("CKPP_DATA", one)
    assert discover_data(None, tmp_path) == [one]
    monkeypatch.setenv("CKPP_DATA", str(tmp_path / "gone.h5"))
    with pytest.raises(CkppError, match="CKPP_DATA"):
        discover_data(None, tmp_path)


def test_open_clip_handles_are_bounded(data):
    ds = ClipDataset([data], ["surprise", "happy"], "train", image_size=64)
    ds.MAX_OPEN_CLIPS = 2
    for i in (0, 1, 2, 3, 1):
        ds[i]
    assert list(ds._handles) == [3, 1]                 # least recently used dropped first
    import pickle
    clone = pickle.loads(pickle.dumps(ds))             # spawn-safe: no h5py objects travel
    assert clone._handles == {} and np.array_equal(clone[(2, 7)]["input"], ds[(2, 7)]["input"])


def test_onset_view_is_the_view_generate_takes_of_a_photo(data):
    # crop_from="onset": the network's view is the crop face_geometry takes of the onset frame as a photo
    # (prepare's box of that frame alone, central crop_fraction), not the clip box that holds every frame
    import cv2

    from ckpp_tools.expressions import apply_affine
    from ckpp_tools.face_geometry import crop_matrix
    from models.config import CROP_FRACTION
    from models.data import cut, view_box

    ds = ClipDataset([data], ["surprise"], "train", image_size=64, augment=False, target="peak", crop_from="onset")
    clip = ClipDataset([data], ["surprise"], "train", image_size=64, augment=False, target="peak")
    s = ds[0]
    with h5py.File(data) as f:
        g = f["clips"][ds.clips[0][1]]
        lm0, onset = g["landmarks"][0].astype(np.float64), g["frames"][0]
    m, _ = crop_matrix(lm0, 64, CROP_FRACTION, align=False)
    got, want = s["input_landmarks"] * 64, apply_affine(lm0, m)
    assert np.abs(got - want).max() < 1.1                       # the box rounded to pixels, centres at +0.5
    assert abs(np.ptp(got, 0).max() / np.ptp(want, 0).max() - 1) < 0.02      # the face as large as in a photo
    x0, y0, c = view_box(72, CROP_FRACTION, "onset", lm0)
    expect = cv2.resize(np.ascontiguousarray(cut(onset, x0, y0, c)), (64, 64),
                        interpolation=cv2.INTER_AREA if c > 64 else cv2.INTER_LINEAR)
    assert np.array_equal(s["input"], expect)
    assert view_box(72, CROP_FRACTION, "clip") == ((72 - 64) // 2, (72 - 64) // 2, 64)
    assert not np.allclose(s["input_landmarks"], clip[0]["input_landmarks"], atol=0.01)   # a different view
    # augmented: shifts stay small, image, mask and landmarks move together
    aug = ClipDataset([data], ["surprise"], "train", image_size=64, crop_from="onset", scale_jitter=0.1)
    for draw in range(20):
        a = aug[(0, draw)]
        assert np.abs(a["input_landmarks"].mean(0) - s["input_landmarks"].mean(0)).max() < 0.15
        ys, xs = np.nonzero(a["mask"])
        mouth = a["landmarks"][48:68] * 64
        assert abs(xs.mean() - mouth[:, 0].mean()) < 3 and abs(ys.mean() - mouth[:, 1].mean()) < 3


def test_cut_repeats_edge_pixels_outside_the_frame():
    from models.data import cut

    a = np.arange(16, dtype=np.uint8).reshape(4, 4)
    assert np.array_equal(cut(a, 1, 1, 2), a[1:3, 1:3])
    out = cut(a, -1, 2, 3)
    assert out.shape == (3, 3) and np.array_equal(out[0], [8, 8, 9]) and np.array_equal(out[2], [12, 12, 13])


def test_config_rejects_an_unknown_crop_from():
    from ckpp_tools.errors import UsageError
    from models.config import preset

    with pytest.raises(UsageError, match="crop_from"):
        preset("tiny").replace(crop_from="face")
