"""A full disk, for real: ckpp's writers on small tmpfs mounts (root needed to mount them; skipped with a message
otherwise), then the space freed (the tmpfs remounted larger) and the same command rerun with --resume.

Per run it records the exit code, whether the interpreter crashed (SIGSEGV: exit 139 / -11, what issue 25 saw
in 3 of 4 `prepare` runs), whether a traceback was printed, the message, what was left behind (`*.partial`,
probes) and, after the resume, whether the result equals an uninterrupted run on a normal disk (prepare:
every manifest row, array and attribute; train: final weights and optimiser state, bitwise).

    sudo python benchmarks/bm_disk_full.py                 # ~5-10 min on 2 busy cores
    sudo python benchmarks/bm_disk_full.py --repeats 2 --control-rev ''     # quicker, no "before" control

`--control-rev REV` (default: the commit before the fix) also runs the same prepare with that revision's code
(`git archive`), to show the crash the fix removes.

Results: benchmarks/results/bm_disk_full.json (docs/reliability.md summarises them).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from bm_kill_resume import dataset_digest, weights_digest  # noqa: E402
from ckpp_tools.lifecycle import popen_kwargs  # noqa: E402

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
CKPP = [sys.executable, "-m", "ckpp_tools.cli"]
TRAIN_CFG = {"preset": "tiny", "ckpt_every": 2, "sample_every": 100000, "log_every": 1, "batch_size": 2}
CRASH = {139, -11, 134, -6}


# ---- mounts -------------------------------------------------------------------------------------------

def sh(*cmd) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def can_mount(work: str) -> str | None:
    """None if a tmpfs can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "not root: mounting a tmpfs needs root (sudo python benchmarks/bm_disk_full.py)"
    d = os.path.join(work, "probe-mount")
    os.makedirs(d)
    try:
        sh("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", d)
        sh("umount", d)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        return f"cannot mount a tmpfs ({exc}); a container may need CAP_SYS_ADMIN"
    return None


class Tmpfs:
    def __init__(self, path: str, size: str, ro: bool = False):
        self.path, self.size, self.ro = path, size, ro

    def __enter__(self):
        os.makedirs(self.path, exist_ok=True)
        sh("mount", "-t", "tmpfs", "-o", f"size={self.size}" + (",ro" if self.ro else ""), "tmpfs", self.path)
        return self

    def grow(self, size: str) -> None:
        """Free space: what a user does by deleting files elsewhere, done by remounting larger (content kept)."""
        sh("mount", "-o", f"remount,size={size}", self.path)

    def __exit__(self, *exc):
        subprocess.run(["umount", self.path], capture_output=True)


# ---- one command, observed ---------------------------------------------------------------------------

def run(cmd, cwd, env=None, limit_bytes=None, timeout=900) -> dict:
    def pre():
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    t0 = time.monotonic()
    kw = popen_kwargs(signal.SIGKILL, env or ENV)
    if limit_bytes:
        inner = kw.get("preexec_fn")
        kw["preexec_fn"] = (lambda: (inner(), pre())) if inner else pre
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)
    text = p.stdout + p.stderr
    err = text[text.find("Error:"):] if "Error:" in text else text[-600:]
    return {"rc": p.returncode, "crash": p.returncode in CRASH, "traceback": "Traceback" in text,
            "exception_ignored": "Exception ignored" in text, "message": err.strip()[:900],
            "notes": [x for x in text.splitlines() if x.startswith("note:")],
            "seconds": round(time.monotonic() - t0, 1)}


def leftovers(folder: str) -> list[str]:
    out = []
    for dp, _, files in os.walk(folder):
        for f in files:
            if ".partial" in f or "probe" in f:
                out.append(os.path.relpath(os.path.join(dp, f), folder))
        if ".partial" in os.path.basename(dp):
            out.append(os.path.relpath(dp, folder) + "/")
    return sorted(set(out))


def listing(folder: str) -> list[str]:
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


# ---- the trials ----------------------------------------------------------------------------------------

def bench_prepare(work: str, raw: str, repeats: int, control: str | None) -> dict:
    res: dict = {}
    ref = os.path.join(work, "ref")
    r = run(CKPP + ["prepare", raw, os.path.join(ref, "out.h5"), "--workers", "2", "--quiet"], work)
    assert r["rc"] == 0, r
    want = dataset_digest(os.path.join(ref, "out.h5"))
    ref_bytes = sum(os.path.getsize(os.path.join(ref, f)) for f in os.listdir(ref))
    res["uninterrupted"] = {"seconds": r["seconds"], "bytes": ref_bytes, "files": listing(ref)}
    mnt = os.path.join(work, "mnt")
    # 1. default options on a 3 MB tmpfs: the estimate refuses before any work
    with Tmpfs(mnt, "3m"):
        t = run(CKPP + ["prepare", raw, os.path.join(mnt, "out.h5"), "--workers", "2", "--quiet"], work)
        t["left"] = listing(mnt)
        res["3MB_up_front_check"] = t
        print("prepare, up-front check:", t["rc"], t["message"].splitlines()[:1], flush=True)
    # 2. --no-space-check: fills the 3 MB, then space is freed and --resume finishes
    trials = []
    for i in range(repeats):
        with Tmpfs(mnt, "3m") as fs:
            cmd = CKPP + ["prepare", raw, os.path.join(mnt, "out.h5"), "--workers", "2", "--quiet", "--no-space-check"]
            t = run(cmd, work)
            t["left"], t["partial_left"] = listing(mnt), leftovers(mnt)
            fs.grow("300m")
            rr = run(cmd + ["--resume"], work)
            t["resume_rc"] = rr["rc"]
            t["identical"] = rr["rc"] == 0 and dataset_digest(os.path.join(mnt, "out.h5")) == want
        trials.append(t)
        print(f"prepare 3MB #{i}:", {k: t[k] for k in ("rc", "crash", "traceback", "partial_left", "resume_rc", "identical")},
              flush=True)
    res["3MB_no_space_check"] = trials
    # 3. a run that fills up after some shards are complete: they are kept and reused
    sref = os.path.join(work, "ref5")
    r = run(CKPP + ["prepare", raw, os.path.join(sref, "out.h5"), "--workers", "2", "--quiet", "--shard-size", "5M"], work)
    want5 = dataset_digest(os.path.join(sref, "out.h5"))
    with Tmpfs(mnt, "20m") as fs:
        cmd = CKPP + ["prepare", raw, os.path.join(mnt, "out.h5"), "--workers", "2", "--quiet", "--shard-size", "5M",
                      "--no-space-check"]
        t = run(cmd, work)
        t["left"], t["partial_left"] = listing(mnt), leftovers(mnt)
        fs.grow("300m")
        rr = run(cmd + ["--resume"], work)
        t["resume_rc"], t["resume_note"] = rr["rc"], [x for x in rr["notes"] if "resumed" in x][:1]
        t["identical"] = rr["rc"] == 0 and dataset_digest(os.path.join(mnt, "out.h5")) == want5
    res["20MB_shards_5M"] = t
    print("prepare 20MB, 5M shards:", {k: t[k] for k in ("rc", "crash", "left", "resume_rc", "identical")}, flush=True)
    # 4. read-only output folder; 5. a file-size limit (EFBIG)
    with Tmpfs(mnt, "10m", ro=True):
        t = run(CKPP + ["prepare", raw, os.path.join(mnt, "out.h5"), "--workers", "2", "--quiet"], work)
        res["read_only"] = t
    out = os.path.join(work, "efbig")
    t = run(CKPP + ["prepare", raw, os.path.join(out, "out.h5"), "--workers", "2", "--quiet"], work, limit_bytes=3_000_000)
    t["partial_left"] = leftovers(out)
    res["file_size_limit_3MB"] = t
    print("prepare read-only:", res["read_only"]["rc"], "EFBIG:", t["rc"], flush=True)
    # control: the code before the fix, same 3 MB tmpfs
    if control:
        old = os.path.join(work, "old")
        os.makedirs(old)
        arch = subprocess.run(["git", "-C", ROOT, "archive", control, "ckpp_tools", "models"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", old], input=arch.stdout, check=True)
        env = dict(ENV, PYTHONPATH=old)
        ctl = []
        for i in range(repeats):
            with Tmpfs(mnt, "3m"):
                t = run(CKPP + ["prepare", raw, os.path.join(mnt, "out.h5"), "--workers", "2", "--quiet"], old, env=env)
                t["partial_left"] = leftovers(mnt)
                t["message"] = t["message"][-300:]
            ctl.append(t)
            print(f"control ({control}) 3MB #{i}:", {k: t[k] for k in ("rc", "crash", "traceback", "partial_left")}, flush=True)
        res["control_before_fix"] = {"rev": control, "trials": ctl}
    return res


def bench_train(work: str, raw: str, repeats: int) -> dict:
    base = os.path.join(work, "train")
    os.makedirs(base)
    r = run(CKPP + ["prepare", raw, "data.h5", "--size", "72", "--workers", "2", "--quiet"], base)
    assert r["rc"] == 0, r
    with open(os.path.join(base, "cfg.json"), "w") as fh:
        json.dump(TRAIN_CFG, fh)

    def cmd(out):
        return CKPP + ["train", "data.h5", "--emotion", "surprise", "--config", "cfg.json", "--steps", "6",
                       "--out", out, "--quiet"]

    r = run(cmd("runs/ref"), base)
    assert r["rc"] == 0, r
    want = weights_digest(os.path.join(base, "runs/ref"))
    ckpt = os.path.getsize(os.path.join(base, "runs/ref", "ckpt-00000006.pt"))
    res = {"uninterrupted_s": r["seconds"], "checkpoint_bytes": ckpt, "trials": []}
    mnt = os.path.join(base, "mnt")
    for i in range(repeats):
        # room for one checkpoint and the temp file of the next but not a second one beside it
        with Tmpfs(mnt, f"{int(ckpt * 1.6) // 1024}k") as fs:
            t = run(cmd(os.path.join(mnt, "r")), base)
            t["left"], t["partial_left"] = listing(os.path.join(mnt, "r")), leftovers(mnt)
            fs.grow("200m")
            rr = run(cmd(os.path.join(mnt, "r")) + ["--resume"], base)
            t["resume_rc"] = rr["rc"]
            t["identical"] = rr["rc"] == 0 and weights_digest(os.path.join(mnt, "r")) == want
        res["trials"].append(t)
        print(f"train #{i}:", {k: t[k] for k in ("rc", "crash", "traceback", "left", "resume_rc", "identical")}, flush=True)
    with Tmpfs(mnt, "10m", ro=True):
        res["read_only"] = run(cmd(os.path.join(mnt, "r")), base)
    return res


def bench_others(work: str, raw: str) -> dict:
    """sample, generate (mp4, GIF), benchmark's report, merge and the demo's first step on a full tmpfs."""
    import matplotlib

    base = os.path.join(work, "train")
    mnt = os.path.join(work, "mnt2")
    hopper = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    res = {}
    with Tmpfs(mnt, "3m"):
        t = run(CKPP + ["sample", os.path.join(mnt, "raw"), "--small"], work)
        t["partial_left"], t["left"] = leftovers(mnt), listing(mnt)
        res["sample_3MB"] = t
    for ext in ("mp4", "gif"):
        with Tmpfs(mnt, "60k"):
            out = os.path.join(mnt, f"hopper.{ext}")
            t = run(CKPP + ["generate", "runs/ref", hopper, "--emotion", "surprise", "--paste-back", "-o", out], base)
            t["partial_left"], t["left"] = leftovers(mnt), listing(mnt)
            res[f"generate_{ext}_60kB"] = t
    with Tmpfs(mnt, "1m"):
        # a previous complete report, then the disk fills up under the next one
        rep = os.path.join(mnt, "rep")
        cmd = CKPP + ["benchmark", "data.h5", "--model", "runs/ref", "--baselines", "none", "--no-identity", "--gifs", "1",
                      "--max-clips", "1", "-o", rep]
        first = run(cmd, base)
        before = {f: open(os.path.join(rep, f), "rb").read() for f in listing(rep)} if first["rc"] == 0 else {}
        with open(os.path.join(mnt, "filler"), "wb") as fh:   # leave ~40 kB
            free = shutil.disk_usage(mnt).free
            fh.write(b"\0" * max(0, free - 40_000))
        t = run(cmd, base)
        t["previous_report_intact"] = bool(before) and before == {f: open(os.path.join(rep, f), "rb").read()
                                                                   for f in listing(rep)}
        t["partial_left"] = leftovers(mnt)
        res["benchmark_report_40kB"] = t
    with Tmpfs(mnt, "1m"):
        with open(os.path.join(mnt, "filler"), "wb") as fh:
            fh.write(b"\0" * (shutil.disk_usage(mnt).free - 2000))
        out = os.path.join(mnt, "merged.h5")
        t = run(CKPP + ["merge", "data.h5", out], base)
        t["partial_left"], t["left"] = leftovers(mnt), listing(mnt)
        res["merge_2kB"] = t
    with Tmpfs(mnt, "3m"):
        t = run(CKPP + ["demo", "--small", "--out", os.path.join(mnt, "demo")], work)
        t["message"] = t["message"][-700:]
        res["demo_small_3MB"] = t
    for k, t in res.items():
        print(k, {x: t.get(x) for x in ("rc", "crash", "traceback", "partial_left")}, flush=True)
    return res


def bench_writer_cost(work: str, rounds: int = 5, n_clips: int = 40) -> dict:
    """What writing HDF5 through DeferredErrorFile (h5py's Python-file driver) costs against h5py's own sec2
    driver, the same shard (289x289 frames, 10 a clip) written the same way; then reading it back. No root."""
    import h5py
    import numpy as np

    from ckpp_tools import writer as W

    rng = np.random.default_rng(0)
    S, T = 289, 10
    mask = np.zeros((T, S, S), np.uint8)
    mask[:, 150:180, 100:190] = 1
    clips = [{"size": S, "frames": rng.integers(0, 255, (T, S, S, 3), np.uint8), "mask_chunks": W.compress_chunks(mask),
              "landmarks": rng.random((T, 68, 2)).astype(np.float32), "degree": np.linspace(0, 1, T, dtype=np.float32),
              "source_index": np.arange(T, dtype=np.int32)} for _ in range(n_clips)]

    class Sec2ShardWriter(W.ShardWriter):   # the writer as it was: h5py opens the path itself
        def __init__(self, final_path, *a):
            class H:
                def __init__(h):
                    h.partial = final_path + ".partial"
                    h.f = h5py.File(h.partial, "w")

                def guard(h):
                    import contextlib
                    return contextlib.nullcontext()

                def check(h):
                    pass

                def commit(h):
                    h.f.close()
                    W.commit(h.partial, final_path)
            self.final_path, self.partial, self.rows, self.nbytes, self.n_clips = final_path, final_path + ".partial", [], 0, 0
            self.h = H()
            self.f = self.h.f
            self.clips = self.f.create_group("clips")

    def write(cls, path):
        t0 = time.perf_counter()
        w = cls(path, "run", 0, "fp", S)
        for i, c in enumerate(clips):
            w.add_clip(f"c{i:03d}", c, {"fps": 25.0})
            w.add_row({"clip_id": f"c{i:03d}"})
        w.close()
        return time.perf_counter() - t0

    def read(path):
        t0 = time.perf_counter()
        with h5py.File(path, "r") as f:
            for k in f["clips"]:
                f["clips"][k]["frames"][()]
        return time.perf_counter() - t0

    t = {"sec2_write": [], "deferred_write": [], "sec2_read": [], "deferred_read": []}
    for _ in range(rounds):
        for name, cls in (("sec2", Sec2ShardWriter), ("deferred", W.ShardWriter)):
            p = os.path.join(work, f"cost-{name}.h5")
            t[f"{name}_write"].append(write(cls, p))
            t[f"{name}_read"].append(read(p))
    med = {k: sorted(v)[len(v) // 2] for k, v in t.items()}
    mb = n_clips * T * S * S * 3 / 1e6
    return {"MB_per_shard": round(mb, 1), "rounds": rounds, "seconds": {k: [round(x, 3) for x in v] for k, v in t.items()},
            "write_ratio_deferred_over_sec2": round(med["deferred_write"] / med["sec2_write"], 3),
            "read_ratio_deferred_over_sec2": round(med["deferred_read"] / med["sec2_read"], 3),
            "bytes": {n: os.path.getsize(os.path.join(work, f"cost-{n}.h5")) for n in ("sec2", "deferred")}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=4, help="full-disk prepare runs (issue 25 saw a crash in 3 of 4)")
    ap.add_argument("--train-repeats", type=int, default=2)
    ap.add_argument("--control-rev", default="0d0bb7e", help="also run prepare with this revision's code ('' = no)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bm_disk_full.json"))
    a = ap.parse_args()
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="ckpp-bm-disk-full-")
    try:
        cost = bench_writer_cost(work)
        print("writer cost:", {k: cost[k] for k in ("write_ratio_deferred_over_sec2", "read_ratio_deferred_over_sec2")},
              flush=True)
        why = can_mount(work)
        if why:
            print(f"skipped the tmpfs runs: {why}")
            return 0
        raw = os.path.join(work, "raw")
        r = run(CKPP + ["sample", raw, "--small"], work)
        assert r["rc"] == 0, r
        res = {"machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start",
               "setup": "ckpp sample --small (seed 0); prepare at the default --size 289 (~47 MB); train: tiny "
                        "config, batch 2, checkpoint every 2 steps, 6 steps, on prepare --size 72",
               "prepare": bench_prepare(work, raw, a.repeats, a.control_rev or None),
               "train": bench_train(work, raw, a.train_repeats)}
        res["others"] = bench_others(work, raw)
        res["writer_cost"] = cost
        res["seconds"] = round(time.monotonic() - t0, 1)
        os.makedirs(os.path.dirname(a.out), exist_ok=True)
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)
        print(f"wrote {a.out} in {res['seconds']} s")
    finally:
        for d in ("mnt", "mnt2", "train/mnt", "probe-mount"):
            subprocess.run(["umount", os.path.join(work, d)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
