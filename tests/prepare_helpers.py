"""Helpers for the prepare driver tests: tiny raw trees made from a real photo, and a fake per-clip analysis
(so driver behaviour — order, shards, resume, crashes — is tested apart from landmark detection)."""
from __future__ import annotations

import os
import sys

import cv2
import numpy as np

FAKE_SRC = r'''
import os, time
import numpy as np, cv2
from ckpp_tools.clip_pipeline import ClipResult

def fake_process_clip(frames, *, already_trimmed=False, provided_landmarks=None, onset_peak=None, options=None):
    """Accept every clip: keep frames 1..n-2 (all for CK+), resized; behaviour switches by env for tests."""
    n = len(frames)
    mean = float(np.mean(frames[0]))
    if os.environ.get("CKPP_FAKE_SLEEP"):
        time.sleep(float(os.environ["CKPP_FAKE_SLEEP"]))
    if os.environ.get("CKPP_FAKE_CRASH_N") and n == int(os.environ["CKPP_FAKE_CRASH_N"]):
        os._exit(3)
    if os.environ.get("CKPP_FAKE_HANG_N") and n == int(os.environ["CKPP_FAKE_HANG_N"]):
        time.sleep(3600)
    S = options.size
    o, p = (0, n - 1) if already_trimmed else (onset_peak if onset_peak else (1, n - 2))
    T = p - o + 1
    fr = np.stack([cv2.resize(np.dstack([f] * 3) if f.ndim == 2 else f, (S, S)) for f in frames[o:p + 1]])
    g = np.stack(np.meshgrid(np.linspace(0.2, 0.8, 17), np.linspace(0.3, 0.8, 4)), -1).reshape(-1, 2)[:68] * S
    lm = np.repeat(g[None].astype(np.float32), T, 0)
    mask = np.zeros((T, S, S), np.uint8)
    mask[:, S // 2:S // 2 + S // 8, S // 3:S // 2] = 1
    h, w = frames[0].shape[:2]
    side = float(max(w, h))
    return ClipResult("accepted", onset=o, peak=p, frames=fr, landmarks=lm, mouth_mask=mask,
                      degree=np.linspace(0, 1, T).astype(np.float32), source_index=np.arange(o, p + 1, dtype=np.int32),
                      crop_box=np.array([0, 0, side, side]), original_size=(w, h), blur_score=mean, head_motion=0.0)
'''


def install_fake(monkeypatch=None):
    """Replace clip_pipeline.process_clip by the fake (workers are forked, so they inherit it)."""
    import types

    import ckpp_tools.clip_pipeline as cp

    mod = types.ModuleType("ckpp_fake_clip")
    exec(compile(FAKE_SRC, "ckpp_fake_clip", "exec"), mod.__dict__)
    if monkeypatch is not None:
        monkeypatch.setattr(cp, "process_clip", mod.fake_process_clip)
    else:
        cp.process_clip = mod.fake_process_clip
    return mod.fake_process_clip


def runner_script(tmp_path) -> str:
    """A python file that runs `ckpp` with the fake analysis (for subprocess tests: kill -9 etc.)."""
    d = os.path.join(str(tmp_path), "fakepkg")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "ckpp_fake_clip.py"), "w") as fh:
        fh.write(FAKE_SRC)
    path = os.path.join(d, "run_ckpp.py")
    with open(path, "w") as fh:
        fh.write(
            "import sys\n"
            f"sys.path.insert(0, {d!r})\n"
            "import ckpp_fake_clip, ckpp_tools.clip_pipeline as cp\n"
            "cp.process_clip = ckpp_fake_clip.fake_process_clip\n"
            "from ckpp_tools.cli import main\n"
            "main(sys.argv[1:])\n"
        )
    return path


def photo(size=(160, 120)) -> np.ndarray:
    from skimage import data

    return cv2.resize(data.astronaut(), size, interpolation=cv2.INTER_AREA)


def write_video(path, n, size=(96, 80), shift=0, fps=25):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = photo(size)
    w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for t in range(n):
        w.write(np.ascontiguousarray(np.roll(img, 2 * t + shift, axis=1)[..., ::-1]))
    w.release()


def write_frames(folder, n, size=(80, 64), gray=False, shift=0, pattern="f{t}.png"):
    os.makedirs(folder, exist_ok=True)
    img = photo(size)
    for t in range(n):
        f = np.roll(img, t + shift, axis=0)
        if gray:
            cv2.imwrite(os.path.join(folder, pattern.format(t=t + 1)), cv2.cvtColor(f, cv2.COLOR_RGB2GRAY))
        else:
            cv2.imwrite(os.path.join(folder, pattern.format(t=t + 1)), f[..., ::-1])


def make_raw(root, n_subjects=3, n_frames=8, broken=True) -> str:
    """raw/ with a CK+ tree (one labelled, one unlabelled sequence) and CK++ videos for n_subjects subjects."""
    raw = os.path.join(str(root), "raw")
    ck = os.path.join(raw, "CK+")
    for s, q, code in (("S005", "001", 7), ("S010", "002", None)):
        write_frames(os.path.join(ck, "cohn-kanade-images", s, q), 6, gray=True, shift=3 * int(s[1:]),
                     pattern=f"{s}_{q}_{{t:08d}}.png")
        if code is not None:
            e = os.path.join(ck, "Emotion", s, q)
            os.makedirs(e, exist_ok=True)
            with open(os.path.join(e, f"{s}_{q}_00000006_emotion.txt"), "w") as fh:
                fh.write(f"   {code:.7e}\n")
    for i in range(n_subjects):
        sid = f"P{i + 1:03d}"
        write_video(os.path.join(raw, "ours", sid, "happy_01.mp4"), n_frames, shift=5 * i)
        write_frames(os.path.join(raw, "ours", sid, "surprise", "01"), n_frames, shift=7 * i + 1)
    if broken:
        with open(os.path.join(raw, "ours", "P001", "anger_01.mp4"), "wb") as fh:
            fh.write(b"not a video at all\n" * 20)
        open(os.path.join(raw, "ours", "P001", "fear_09.mp4"), "wb").close()
    return raw


def python() -> str:
    return sys.executable
