"""Training-loader throughput: models.data (PAIR samples, 0/1/2 workers) against a naive loader, same files.

    python benchmarks/bm_loader.py                       # tiny (72² stored -> 64²) and paper (289² -> 256²)
    python benchmarks/bm_loader.py --data out.h5 --emotion surprise --image-size 256

- ours: ClipDataset + make_loader: per-process cached h5py handles, reads only the 2 frames + 1 mask a
  sample needs, crops/flips uint8 in the worker, float conversion left to the device (to_model_batch,
  included in the timing here on CPU).
- naive: opens the file for every sample, reads the whole clip (frames, masks, landmarks), converts the
  full clip to float32 in [-1,1] in the worker, then crops: what a first implementation usually does.

Frames are gzip-compressed one per chunk as `ckpp prepare` writes them; the file is read once first so it
is page-cached. Frames/s counts the images a sample delivers (input + target = 2). Writes JSON (default
benchmarks/results/bm_loader.json) and prints the ratios; the target is >= 5,000 frames/s at the tiny size.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class NaiveDataset:
    """The straightforward loader: open, read the whole clip, convert everything, then crop."""

    def __init__(self, path, clips, image_size, crop_fraction):
        self.path, self.clips, self.size, self.frac = path, clips, image_size, crop_fraction

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, key):
        import cv2
        import h5py

        i, draw = key
        rng = np.random.default_rng(draw)
        with h5py.File(self.path, "r") as f:
            g = f["clips"][self.clips[i]]
            frames = g["frames"][()].astype(np.float32) / 127.5 - 1.0
            masks = g["mouth_mask"][()].astype(np.float32)
            lms = g["landmarks"][()]
            deg = g["degree"][()]
        T, S = frames.shape[:2]
        t = int(rng.integers(T))
        c = int(round(S * self.frac))
        x0, y0 = rng.integers(0, S - c + 1, size=2)
        crop = lambda a: cv2.resize(a[y0:y0 + c, x0:x0 + c], (self.size, self.size))  # noqa: E731
        return {"input": crop(frames[0]).transpose(2, 0, 1), "target": crop(frames[t]).transpose(2, 0, 1),
                "mask": crop(masks[t])[None], "degree": np.float32(deg[t]),
                "landmarks": ((lms[t] - [x0, y0]) / c).astype(np.float32)}


def measure(loader, batches: int, convert=None) -> float:
    """Samples/s over `batches` batches after 2 warm-up batches."""
    it = iter(loader)
    for _ in range(2):
        b = next(it)
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        b = next(it)
        if convert:
            b = convert(b)
        n += len(b["degree"])
    return n / (time.perf_counter() - t0)


def bench_file(path, emotions, image_size, batch, batches, workers_list) -> dict:
    import torch

    from models.config import CROP_FRACTION
    from models.data import ClipDataset, DrawSampler, make_loader, to_model_batch

    with open(path, "rb") as fh:           # page-cache the file (and shards beside it)
        while fh.read(1 << 24):
            pass
    ds = ClipDataset([path], emotions, "train", image_size=image_size)
    res = {"file": os.path.basename(path), "stored_size": ds.stored_size[0], "image_size": image_size, "batch": batch,
           "train_clips": len(ds)}
    for w in workers_list:
        loader = make_loader(ds, batch, w, seed=0)
        sps = measure(loader, batches, convert=lambda b: to_model_batch(b, "cpu"))
        res[f"ours_w{w}_samples_per_s"] = round(sps, 1)
        res[f"ours_w{w}_frames_per_s"] = round(2 * sps, 1)
        del loader
    naive = NaiveDataset(path, [c[1] for c in ds.clips], image_size, CROP_FRACTION)
    for w in (0, max(workers_list)):
        loader = torch.utils.data.DataLoader(naive, batch_size=batch, sampler=DrawSampler(len(ds)), num_workers=w)
        sps = measure(loader, max(2, batches // 4))
        res[f"naive_w{w}_samples_per_s"] = round(sps, 1)
        res[f"naive_w{w}_frames_per_s"] = round(2 * sps, 1)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="a prepared .h5 (default: fake data made from skimage's astronaut)")
    ap.add_argument("--emotion", default="surprise")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "bm_loader.json"))
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    workers = [int(w) for w in a.workers.split(",")]
    results = []
    if a.data:
        results.append(bench_file(a.data, [a.emotion], a.image_size or 64, a.batch, a.batches, workers))
    else:
        from tests.fakes import make_fake_dataset

        with tempfile.TemporaryDirectory() as tmp:
            for label, stored, size, clips, T in (("tiny", 72, 64, 16, 20), ("paper", 289, 256, 8, 12)):
                p = make_fake_dataset(os.path.join(tmp, f"{label}.h5"), emotions=(a.emotion,), n_clips=clips, T=T,
                                      size=stored, compression="gzip")
                r = bench_file(p, [a.emotion], size, a.batch, a.batches if label == "tiny" else max(4, a.batches // 4),
                               workers)
                r["label"] = label
                results.append(r)
    for r in results:
        best = max(r[f"ours_w{w}_frames_per_s"] for w in workers)
        r["speedup_vs_naive_same_workers"] = round(r[f"ours_w{max(workers)}_samples_per_s"] / r[f"naive_w{max(workers)}_samples_per_s"], 2)
        print(f"{r.get('label', r['file'])}: stored {r['stored_size']}² -> {r['image_size']}², batch {r['batch']}")
        for w in workers:
            print(f"  ours  workers={w}: {r[f'ours_w{w}_samples_per_s']:>9.1f} samples/s  {r[f'ours_w{w}_frames_per_s']:>9.1f} frames/s")
        for w in (0, max(workers)):
            print(f"  naive workers={w}: {r[f'naive_w{w}_samples_per_s']:>9.1f} samples/s  {r[f'naive_w{w}_frames_per_s']:>9.1f} frames/s")
        print(f"  ours/naive at {max(workers)} workers: {r['speedup_vs_naive_same_workers']}x; best {best:.0f} frames/s")
    out = {"host": platform.node(), "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "torch": torch.__version__,
           "results": results}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as fh:
        json.dump(out, fh, indent=2)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
