"""Training samples from prepared files, read through the HDF5 contract (DESIGN §4) with plain h5py.

    ds = ClipDataset(["out.h5"], emotions=["surprise"], split="train", image_size=64)        # PAIR
    ds = ClipDataset(["out.h5"], emotions=["happy"], split="train", clip_frames=10)          # SEQUENCE
    loader = make_loader(ds, batch_size=8, num_workers=2, seed=0)                             # infinite
    batch = to_model_batch(next(iter(loader)), device, channels_last=False)                   # float, device

PAIR (the paper's sampling, §4.1): input I = the clip's onset frame (index 0), target Y(a) = a random frame
t with a = degree[t], plus that frame's landmarks and mouth mask and the clip's emotion index.
SEQUENCE (baselines): `clip_frames` frames uniformly spaced over the clip, onset and peak included (clips
shorter than that repeat frames), with their landmarks, masks and degrees.

The view (`view_box`): crop_from="clip" (the paper's) takes a square of side round(S·crop_fraction) of the stored
frame (289 -> 256; other stored sizes keep the ratio), the central part of prepare's box, which covers the union
of ALL the clip's frames; crop_from="onset" takes the central crop_fraction of the box prepare would make from
the onset frame alone — exactly the view `ckpp generate` takes of a photo (face_geometry.crop_matrix), so the
face is as large in training as in use (with "clip", a surprise clip's dropping jaw makes the face ~1.2x
smaller than a photo of it; measured in docs/recipe.md). Padded by edge pixels where it leaves the frame.
Augmentation, identical for all arrays of one sample: the view shifted at random (by up to S-c for "clip", by
the same share of c for "onset"), resized to image_size when that differs, and
a horizontal flip that mirrors landmark x AND permutes their indices with schema.FLIP_68 (a mirrored left
eye is the new right eye). Landmarks are returned in [0,1] of the crop, pixel centres at (i+0.5)/side.

Speed: workers return uint8 HWC arrays; `to_model_batch` converts to float [-1,1] NCHW on the device (4×
less to copy, and HWC->NCHW by permute is already channels_last). h5py handles open lazily per process
(forked handles break, DESIGN §8); the random draw of each sample is a pure function of (seed, draw
number), so results do not depend on the worker count and a resumed run sees the same samples.
"""
from __future__ import annotations

import functools
import os
from collections import Counter

import cv2
import h5py
import numpy as np
import torch

from ckpp_tools import schema
from ckpp_tools.emotions import ONE_SIDED
from ckpp_tools.errors import CkppError, DataFormatError, UsageError
from ckpp_tools.face_geometry import model_box
from ckpp_tools.lifecycle import die_with_parent

from .config import CROP_FRACTION

FLIP = np.asarray(schema.FLIP_68)


def view_box(stored: int, crop_fraction: float = CROP_FRACTION, crop_from: str = "clip",
             onset_landmarks=None) -> tuple[int, int, int]:
    """(x0, y0, c): the un-augmented c x c view of a clip's stored S x S frames a model sees (may reach outside
    the frame: pad). "clip": the centre of the stored frame; "onset": face_geometry.model_box of the onset
    landmarks — what face_geometry.crop_matrix takes of a photo."""
    if crop_from == "onset":
        x0, y0, x1, y1 = model_box(onset_landmarks, crop_fraction)
        return int(round(x0)), int(round(y0)), max(1, int(round(x1 - x0)))
    c = max(1, min(stored, int(round(stored * float(crop_fraction)))))
    return (stored - c) // 2, (stored - c) // 2, c


def cut(a: np.ndarray, x0: int, y0: int, c: int) -> np.ndarray:
    """a[y0:y0+c, x0:x0+c], edge pixels repeated where the square leaves the image (a mouth mask's edge is 0)."""
    h, w = a.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + c <= w and y0 + c <= h:
        return a[y0:y0 + c, x0:x0 + c]
    ys = np.clip(np.arange(y0, y0 + c), 0, h - 1)
    xs = np.clip(np.arange(x0, x0 + c), 0, w - 1)
    return a[ys[:, None], xs[None, :]]


def _strs(ds) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in ds[()]]


def read_manifest(path: str) -> dict[str, list]:
    """The manifest columns of a master file via ckpp_tools.reader (format, schema version checked)."""
    from ckpp_tools.reader import open_dataset

    ds = open_dataset(path)
    m = ds.manifest_dict()
    out = {col: [str(v) for v in m[col]] for col in ("clip_id", "emotion", "status", "split")}
    out["image_size"] = ds.image_size
    return out


def emotion_counts(path: str, split: str | None = "train") -> Counter:
    """Accepted clips per emotion in `split` (None: all splits)."""
    m = read_manifest(path)
    return Counter(e for e, s, sp in zip(m["emotion"], m["status"], m["split"])
                   if s == schema.STATUS_ACCEPTED and (split is None or sp == split))


class ClipDataset(torch.utils.data.Dataset):
    """Samples over the accepted clips of the given emotions and split, from one or more master files.

    Index with an int (clip i, deterministic draw i) or with (clip, draw) pairs from `DrawSampler`."""

    #: open clip datasets kept per process (LRU). Each keeps HDF5's chunk cache of decompressed frames
    #: (up to the reader's rdcc_nbytes), so revisited clips skip inflating; the cap bounds the memory.
    MAX_OPEN_CLIPS = 64

    def __init__(self, paths, emotions: list[str], split: str = "train", *, image_size: int = 64,
                 crop_fraction: float = CROP_FRACTION, clip_frames: int | None = None, augment: bool = True,
                 flip: bool = True, target: str = "random", seed: int = 0, require_all: bool = True,
                 color_jitter: float = 0.0, gray_prob: float = 0.0, scale_jitter: float = 0.0, peak_bias: float = 0.0,
                 crop_from: str = "clip"):
        self.paths = [os.path.abspath(os.fspath(p)) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
        self.emotions = list(emotions)
        self.split = split
        self.image_size = int(image_size)
        self.crop_fraction = float(crop_fraction)
        self.clip_frames = clip_frames
        self.augment = augment
        self.flip = flip and augment
        self.target = target
        self.seed = int(seed)
        # augmentations for generalising to unseen photos (0 = off, the paper's setting; see docs/recipe.md)
        self.color_jitter = float(color_jitter) if augment else 0.0
        self.gray_prob = float(gray_prob) if augment else 0.0
        self.scale_jitter = float(scale_jitter) if augment else 0.0
        self.peak_bias = float(peak_bias)
        self.crop_from = crop_from
        self.clips: list[tuple[int, str, int, int]] = []    # (file index, clip_id, emotion index, T)
        self.degrees: list[np.ndarray] = []
        self.stored_size: list[int] = []
        found: Counter = Counter()
        from ckpp_tools.reader import open_dataset

        self._readers = []
        for fi, path in enumerate(self.paths):
            reader = open_dataset(path)
            self._readers.append(reader)
            self.stored_size.append(reader.image_size)
            for cid in reader.clip_ids(emotion=self.emotions, split=split):
                e = reader.row(cid)["emotion"]
                try:
                    deg = np.asarray(reader.group(cid)[schema.DEGREE][()], np.float32)
                except KeyError as exc:
                    raise DataFormatError(f"manifest lists accepted clip {cid!r} but it cannot be read ({exc})",
                                          path=path, fix="keep the shard files (<name>-NNNNN.h5) next to the master "
                                          "file, or re-run `ckpp prepare`")
                self.clips.append((fi, cid, self.emotions.index(e), len(deg)))
                self.degrees.append(deg)
                found[e] += 1
            reader.close()
        missing = [e for e in self.emotions if found[e] == 0]
        if missing and require_all:
            have = Counter()
            for p in self.paths:
                have.update(emotion_counts(p, split))
            listing = ", ".join(f"{e} ({n})" for e, n in sorted(have.items())) or "no accepted clips at all"
            raise CkppError(f"no accepted {split!r} clips of {', '.join(missing)}; it has: {listing}",
                            path=", ".join(self.paths),
                            fix="train on emotions the file has (--emotion), or prepare data that includes "
                                + ", ".join(missing))
        self.counts = found
        self._pid = None
        self._handles: dict[int, tuple] = {}

    def __len__(self):
        return len(self.clips)

    def epoch_order(self, repeats: dict[str, int]) -> list[int]:
        """One epoch's clip indices with each clip of emotion e listed repeats[e] times (default 1): a lagging
        expression gets more of the shared layers' updates without dropping any clip of the others."""
        unknown = sorted(set(repeats) - set(self.emotions))
        if unknown:
            raise UsageError(f"emotion_repeats names {', '.join(unknown)}, which this run does not train "
                             f"({', '.join(self.emotions)})", path="--config",
                             fix="name only the run's --emotion values in emotion_repeats")
        return [i for i, (_, _, e, _) in enumerate(self.clips) for _ in range(int(repeats.get(self.emotions[e], 1)))]

    # ---- lazy, per-process h5py handles -------------------------------------------------------
    def _clip(self, i: int):
        if self._pid != os.getpid():            # first use in this process (or a forked worker): fresh handles
            self._pid, self._handles = os.getpid(), {}
        h = self._handles.pop(i, None)
        if h is None:
            fi, cid, _, _ = self.clips[i]
            g = self._readers[fi].group(cid)    # the reader opens shards per process and checks run ids
            h = (g[schema.FRAMES], g[schema.LANDMARKS], g[schema.MOUTH_MASK])
            while len(self._handles) >= self.MAX_OPEN_CLIPS:
                self._handles.pop(next(iter(self._handles)))   # least recently used
        self._handles[i] = h                    # (re)insert as most recently used
        return h

    def __getstate__(self):                     # h5py objects never travel to workers (spawn) or pickles
        d = dict(self.__dict__)
        d["_pid"], d["_handles"] = None, {}
        return d

    # ---- sampling -----------------------------------------------------------------------------
    def frame_indices(self, T: int, rng: np.random.Generator, degrees: np.ndarray | None = None) -> list[int]:
        if self.clip_frames:
            return [int(round(x)) for x in np.linspace(0, T - 1, self.clip_frames)]
        if self.target == "peak":
            t = T - 1
        elif self.peak_bias > 0 and degrees is not None:
            # P(t) ∝ 1 + peak_bias·a_t: more targets near the peak, where the expression is (a = 0 frames are
            # the input again and teach nothing about motion), but every frame stays possible
            w = 1.0 + self.peak_bias * np.clip(np.asarray(degrees, np.float64), 0, 1)
            t = int(rng.choice(T, p=w / w.sum()))
        else:
            t = int(rng.integers(T))
        return [0, t]

    def __getitem__(self, key):
        i, draw = (key, key) if isinstance(key, (int, np.integer)) else key
        fi, cid, emotion, T = self.clips[i]
        rng = np.random.default_rng([self.seed, int(draw)])
        idx = self.frame_indices(T, rng, self.degrees[i])
        frames_ds, lm_ds, mask_ds = self._clip(i)
        S = frames_ds.shape[1]
        uniq = sorted(set(idx))
        frames = {t: frames_ds[t] for t in uniq}
        lms = lm_ds[()] if len(uniq) > 2 else None
        lm = {t: (lms[t] if lms is not None else lm_ds[t]) for t in uniq}
        mask_t = uniq if self.clip_frames else [idx[1]]
        masks = {t: mask_ds[t] for t in mask_t}

        onset = self.crop_from == "onset"
        x0, y0, c = view_box(S, self.crop_fraction, self.crop_from, lm[0])
        if self.augment:
            if self.scale_jitter > 0:    # the face a little larger / smaller than the view makes it
                c2 = max(1, int(round(c * (1.0 + rng.uniform(-1, 1) * self.scale_jitter))))
                c2 = c2 if onset else min(S, c2)
                x0, y0, c = x0 + (c - c2) // 2, y0 + (c - c2) // 2, c2
            if onset:                    # shifted by up to the share of c that "clip" shifts by (S - c of S)
                j = max(0, int(round(c * (1.0 / self.crop_fraction - 1.0) / 2.0)))
                dx, dy = (int(v) for v in rng.integers(-j, j + 1, size=2))
                x0, y0 = x0 + dx, y0 + dy
            else:
                x0, y0 = (int(v) for v in rng.integers(0, S - c + 1, size=2))
            flip = self.flip and bool(rng.random() < 0.5) and self.emotions[emotion] not in ONE_SIDED
        else:
            flip = False
        out_s = self.image_size

        def img(a, interp):
            a = cut(a, x0, y0, c)
            if flip:
                a = a[:, ::-1]
            if c != out_s:
                a = cv2.resize(np.ascontiguousarray(a), (out_s, out_s), interpolation=interp)
            return np.ascontiguousarray(a)

        def pts(p):
            q = (np.asarray(p, np.float32) - np.array([x0, y0], np.float32) + 0.5) / c
            if flip:
                q = q[FLIP]
                q[:, 0] = 1.0 - q[:, 0]
            return q

        shrink = cv2.INTER_AREA if c > out_s else cv2.INTER_LINEAR
        deg = self.degrees[i]
        colour = self._colour_fn(rng)
        if colour is not None:
            frames = {t: colour(f) for t, f in frames.items()}
        if self.clip_frames:
            return {
                "frames": np.stack([img(frames[t], shrink) for t in idx]),
                "landmarks": np.stack([pts(lm[t]) for t in idx]),
                "masks": np.stack([img(masks[t], cv2.INTER_NEAREST) for t in idx]),
                "degrees": deg[idx].astype(np.float32),
                "emotion": emotion,
            }
        t = idx[1]
        return {
            "input": img(frames[0], shrink),
            "target": img(frames[t], shrink),
            "degree": np.float32(deg[t]),
            "emotion": emotion,
            "landmarks": pts(lm[t]),
            "input_landmarks": pts(lm[0]),
            "mask": img(masks[t], cv2.INTER_NEAREST),
        }


    def _colour_fn(self, rng: np.random.Generator):
        """One colour change for every frame of a sample (so the motion is unchanged): per-channel gains,
        brightness, contrast, and with `gray_prob` a grey image. Photos in the wild differ in light and
        white balance from the studio headshots the sample data is made of."""
        if self.color_jitter <= 0 and self.gray_prob <= 0:
            return None
        j = self.color_jitter
        gains = (1.0 + rng.uniform(-j, j, size=3)).astype(np.float32)
        bright = np.float32(rng.uniform(-j, j) * 0.5 * 255)
        contrast = np.float32(1.0 + rng.uniform(-j, j))
        gray = bool(rng.random() < self.gray_prob)
        if gray:                                   # a grey photo stays grey (brightness/contrast only)
            gains[:] = gains.mean()

        def apply(a):
            f = a.astype(np.float32)
            if gray:
                f = np.repeat((f @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, axis=2)
            f = f * gains
            f = (f - 127.5) * contrast + 127.5 + bright
            return np.clip(f + 0.5, 0, 255).astype(np.uint8)

        return apply


class DrawSampler(torch.utils.data.Sampler):
    """Endless (clip, draw) stream: per epoch a fresh permutation of the clips (seeded by seed + epoch,
    DistributedSampler's scheme), dealt round-robin to `world_size` ranks; `start` skips this rank's first
    draws so a resumed run continues exactly where it stopped. The draw number seeds that sample's crop,
    flip and target frame. Endless so that DataLoader workers persist across epochs."""

    def __init__(self, n: int, *, seed: int = 0, rank: int = 0, world_size: int = 1, start: int = 0, shuffle: bool = True,
                 order: list[int] | None = None):
        # `order`: the epoch's clips, some listed more than once (ClipDataset.epoch_order: an expression drawn
        # k times as often); None = each of the n clips once
        self.order = list(order) if order is not None else None
        n = len(self.order) if self.order is not None else n
        self.n, self.seed, self.rank, self.world, self.start, self.shuffle = n, seed, rank, world_size, start, shuffle
        self.per_rank = -(-n // world_size)

    def __iter__(self):
        epoch, offset = divmod(self.start, self.per_rank)
        while True:
            if self.shuffle:
                g = torch.Generator().manual_seed(self.seed + epoch)
                perm = torch.randperm(self.n, generator=g).tolist()
            else:
                perm = list(range(self.n))
            padded = (perm * (self.world + 1))[: self.per_rank * self.world]   # equal share per rank
            mine = list(range(self.rank, len(padded), self.world))
            for pos in mine[offset:]:
                clip = padded[pos] if self.order is None else self.order[padded[pos]]
                yield clip, epoch * len(padded) + pos
            epoch, offset = epoch + 1, 0

    def __len__(self):  # one epoch's share (DataLoader only uses it for len())
        return self.per_rank


def _worker_init(worker_id: int, parent_pid: int | None = None) -> None:
    die_with_parent(parent_pid)   # a killed `ckpp train` leaves no loader worker behind (docs/reliability.md)
    info = torch.utils.data.get_worker_info()
    np.random.seed((info.seed if info else worker_id) % 2 ** 32)   # only for code that uses the global RNG


def make_loader(ds: ClipDataset, batch_size: int, num_workers: int = 2, *, seed: int = 0, rank: int = 0,
                world_size: int = 1, start_draw: int = 0, pin_memory: bool = False, order: list[int] | None = None):
    """An endless DataLoader over ds (drop-free: every batch is full).

    Workers are forked. OpenCV's thread pool does not survive fork (a forked worker touching it hangs,
    e.g. in cv2.setNumThreads or a parallel resize), so the parent drops to one OpenCV thread first:
    the workers are the parallelism. `order`: each epoch's clips with repeats (`ClipDataset.epoch_order`,
    Config.emotion_repeats); None = each clip once."""
    if num_workers > 0:
        cv2.setNumThreads(1)
    sampler = DrawSampler(len(ds), seed=seed, rank=rank, world_size=world_size, start=start_draw,
                          order=order)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
        worker_init_fn=functools.partial(_worker_init, parent_pid=os.getpid()), persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        multiprocessing_context="fork" if num_workers > 0 and "fork" in torch.multiprocessing.get_all_start_methods() else None,
    )


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    return torch.utils.data.default_collate(samples)


def to_model_batch(raw: dict[str, torch.Tensor], device, channels_last: bool = False) -> dict[str, torch.Tensor]:
    """uint8 HWC images -> float [-1,1] NCHW (B,3,S,S) / (B,K,3,S,S) on `device`; masks -> float {0,1}
    (B,1,S,S) / (B,K,1,S,S); the rest moved as is. PAIR also gets nothing more; SEQUENCE gets input = frames[:,0]."""
    out = {}
    nb = torch.device(device).type == "cuda"
    for k, v in raw.items():
        v = v.to(device, non_blocking=nb)
        if k in ("input", "target"):
            v = v.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            if not channels_last:
                v = v.contiguous()
        elif k == "frames":
            v = v.permute(0, 1, 4, 2, 3).float().div_(127.5).sub_(1.0).contiguous()
        elif k == "mask":
            v = v.unsqueeze(1).float()
        elif k == "masks":
            v = v.unsqueeze(2).float()
        elif k == "emotion":
            v = v.long()
        out[k] = v
    if "frames" in out:
        out["input"] = out["frames"][:, 0]
        if channels_last:
            out["input"] = out["input"].contiguous(memory_format=torch.channels_last)
    return out


# ---- finding the data file -------------------------------------------------------------------------

_SHARD_RE = __import__("re").compile(r"-\d{5}\.h5$")


def is_ckpp_master(path: str) -> bool:
    """True for a readable ckpp master .h5 (format "ckpp", not a shard, with a manifest)."""
    from ckpp_tools.reader import check_header

    if _SHARD_RE.search(os.path.basename(path)):
        return False
    try:
        with h5py.File(path, "r") as f:
            check_header(f, path)
            return schema.MANIFEST in f
    except (OSError, CkppError):
        return False


def discover_data(given=None, folder: str = ".") -> list[str]:
    """DATA paths for `ckpp train`/`benchmark`: the given ones; else $CKPP_DATA; else the one ckpp master
    .h5 in `folder` (shards `*-00000.h5` and non-ckpp files ignored). None or several -> CkppError."""
    if given:
        paths = [os.fspath(p) for p in ([given] if isinstance(given, (str, os.PathLike)) else given)]
        for p in paths:
            if not os.path.isfile(p):
                raise CkppError("no such data file", path=p, fix="pass the .h5 written by `ckpp prepare RAW OUT.h5`")
        return paths
    env = os.environ.get("CKPP_DATA")
    if env:
        if not os.path.isfile(env):
            raise CkppError("$CKPP_DATA points to a missing file", path=env,
                            fix="set CKPP_DATA to the .h5 written by `ckpp prepare`, or unset it")
        return [env]
    folder = os.path.abspath(folder)
    h5s = sorted(p for p in os.listdir(folder) if p.endswith(".h5"))
    masters = [p for p in h5s if is_ckpp_master(os.path.join(folder, p))]
    if len(masters) == 1:
        return [os.path.join(folder, masters[0])]
    if not masters:
        others = f" (found {', '.join(h5s)}, none a ckpp master file)" if h5s else ""
        raise CkppError(f"no prepared data file here{others}", path=folder,
                        fix="run `ckpp prepare RAW/ out.h5` in this folder, pass DATA.h5, or set CKPP_DATA")
    raise CkppError(f"several prepared data files here: {', '.join(masters)}", path=folder,
                    fix=f"name the one to use, e.g. `ckpp train {masters[0]} --emotion ...` (or set CKPP_DATA)")
