"""kill -9 + --resume, measured: `ckpp prepare` (both worker counts), `ckpp train` and `ckpp sample` are killed at
points spread over a run, resumed with the same command plus --resume, and compared with an uninterrupted run.

Checked per kill: no process of the killed run is alive 3 s later (workers, loader workers), the resume
exits 0 (also when the kill landed after the run finished: a no-op), and the result equals the
uninterrupted run's (prepare: every manifest row, array and attribute; train: the final weights and
optimiser state, bitwise; sample: every file of the tree, bytewise). As a control, a few kills of prepare run with the parent-death wiring switched
off (what the code did before), to show the orphan check can fail.

    python benchmarks/bm_kill_resume.py                      # ~10 min on 2 busy cores
    python benchmarks/bm_kill_resume.py --prepare-kills 4 --train-kills 2 --control-kills 0 --sample-kills 2  # smoke
    python benchmarks/bm_kill_resume.py --only sample       # ~3 min: sample's row only, merged into the JSON

Results: benchmarks/results/bm_kill_resume.json
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ckpp_tools.lifecycle import is_alive, live_children, popen_kwargs  # noqa: E402

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
CKPP = [sys.executable, "-m", "ckpp_tools.cli"]
#: the parent-death wiring switched off (the control: what prepare did before)
UNFIXED = ("import sys, ckpp_tools.lifecycle as L\n"
           "L.die_with_parent = lambda *a, **k: 'off'\n"
           "from ckpp_tools.cli import main\nmain(sys.argv[1:])\n")


def run(cmd, cwd, timeout=600):
    """Run to the end; it dies with this script (popen_kwargs) if the script is killed."""
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          **popen_kwargs(signal.SIGKILL, ENV))


def timed_run(cmd, cwd) -> tuple[float, float]:
    """An uninterrupted run: (seconds in all, seconds until its first child process, i.e. work, started)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         **popen_kwargs(signal.SIGKILL, ENV))
    t_child = None
    while p.poll() is None:
        if t_child is None and live_children(p.pid):
            t_child = time.monotonic() - t0
        time.sleep(0.02)
    err = p.stderr.read().decode(errors="replace")
    assert p.returncode == 0, err
    t = time.monotonic() - t0
    return t, t_child if t_child is not None else 0.0


def procs_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains `text` (forked workers keep their parent's command line)."""
    out = []
    for n in os.listdir("/proc"):
        if n.isdigit() and int(n) != os.getpid():
            try:
                with open(f"/proc/{n}/cmdline", "rb") as fh:
                    if text.encode() in fh.read() and is_alive(int(n)):
                        out.append(int(n))
            except OSError:
                pass
    return out


def kill_at(cmd, cwd, at: float, marker: str, until=None) -> dict:
    """Start cmd, kill -9 it `at` s later, or as soon as until(proc) is true (unless it ended first), then count
    what of it is alive 3 s after."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         **popen_kwargs(signal.SIGKILL, ENV))
    kids: set[int] = set()
    while p.poll() is None and (time.monotonic() - t0 < at if until is None else not until(p)):
        kids.update(live_children(p.pid))
        time.sleep(0.02)
    finished = p.poll() is not None
    kids.update(live_children(p.pid))
    if not finished:
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    killed_at = time.monotonic() - t0
    time.sleep(3.0)
    left = sorted({k for k in kids if is_alive(k)} | set(procs_mentioning(marker)))
    for k in left:   # do not leak them into the next trial
        try:
            os.kill(k, signal.SIGKILL)
        except OSError:
            pass
    return {"kill_at_s": round(killed_at, 2), "ended_before_kill": finished, "children_seen": len(kids),
            "orphans": len(left)}


# ---- prepare ------------------------------------------------------------------------------------------

def dataset_digest(path: str) -> str:
    """Everything a reader sees, minus run ids and timestamps (cf. tests/test_prepare_cli.content)."""
    from ckpp_tools.reader import open_dataset

    h = hashlib.sha256()
    ds = open_dataset(path)
    h.update(json.dumps(ds.manifest.to_dict("list"), sort_keys=True, default=str).encode())
    for cid in ds.clip_ids():
        c = ds.clip(cid)
        for a in (c.frames, c.landmarks, c.mouth_mask, c.degree, c.source_index):
            h.update(a.tobytes())
        h.update(repr(sorted((k, str(v)) for k, v in c.attrs.items())).encode())
    ds.close()
    return h.hexdigest()


def prepare_cmd(raw, out, workers, prefix=None):
    return (prefix or CKPP) + ["prepare", raw, out, "--size", "48", "--workers", str(workers),
                               "--shard-size", "200K", "--quiet"]


_REFS: dict[int, tuple[float, float, str]] = {}


def bench_prepare(work, raw, workers, n, control=False) -> dict:
    if workers not in _REFS:   # the uninterrupted run (with the fix: the control changes nothing else)
        ref_dir = os.path.join(work, f"prep-ref-w{workers}")
        os.makedirs(ref_dir)
        t_all, t_work = timed_run(prepare_cmd(raw, "out.h5", workers), ref_dir)
        _REFS[workers] = (t_all, t_work, dataset_digest(os.path.join(ref_dir, "out.h5")))
    t_ref, t_work, want = _REFS[workers]
    ref_dir = os.path.join(work, f"prep-ref-w{workers}")
    n_shards = len([f for f in os.listdir(ref_dir) if f.startswith("out-") and f.endswith(".h5")])
    # kill points by progress, not time (a run's time swings 10x with the machine's load): in start-up, when
    # the workers run, while shard k is being written / right after it is complete, after the master, and at
    # the end (no kill: --resume of a finished run); n of them, evenly picked from that list
    events = [("startup", 0), ("workers", 0)]
    for k in range(n_shards):
        events += [("partial", k), ("complete", k)]
    events += [("master", 0), ("end", 0)]
    if control:   # the control only needs kills while workers run
        events = [e for e in events if e[0] in ("workers", "partial", "complete")][:-1]
    picks = [events[round(i * (len(events) - 1) / max(1, n - 1))] for i in range(n)]
    prefix = None
    if control:
        script = os.path.join(work, "unfixed_ckpp.py")
        with open(script, "w") as fh:
            fh.write(UNFIXED)
        prefix = [sys.executable, script]
    trials = []
    for i in range(n):
        d = os.path.join(work, f"prep-{'ctl' if control else 'kill'}-w{workers}-{i:02d}")
        os.makedirs(d)
        kind, k = picks[i]
        shard = os.path.join(d, f"out-{k:05d}.h5")
        until = {"startup": lambda p: False, "workers": lambda p: bool(live_children(p.pid)),
                 "partial": lambda p: os.path.exists(shard + ".partial"), "complete": lambda p: os.path.exists(shard),
                 "master": lambda p: os.path.exists(os.path.join(d, "out.h5")), "end": lambda p: False}[kind]
        at = 0.5 if kind == "startup" else 0.0
        tr = kill_at(prepare_cmd(raw, "out.h5", workers, prefix), d, at, marker=raw,
                     until=None if kind == "startup" else until)
        tr["kill_point"] = kind + (f" {k}" if kind in ("partial", "complete") else "")
        tr["shards_on_disk"] = len([f for f in os.listdir(d) if f.startswith("out-") and f.endswith(".h5")])
        tr["master_on_disk"] = os.path.exists(os.path.join(d, "out.h5"))
        res = run(prepare_cmd(raw, "out.h5", workers, prefix) + ["--resume"], d)
        tr["resume_rc"] = res.returncode
        tr["resume_note"] = next((ln[6:] for ln in res.stdout.splitlines() if ln.startswith("note: ")), "")
        if res.returncode != 0:
            tr["resume_error"] = (res.stderr or res.stdout).strip().splitlines()[-1:]
        tr["identical"] = res.returncode == 0 and dataset_digest(os.path.join(d, "out.h5")) == want
        trials.append(tr)
        print(f"prepare w{workers}{' control' if control else ''} #{i}: {tr}", flush=True)
        shutil.rmtree(d, ignore_errors=True)
    return summary(trials, t_ref, t_work)


# ---- sample -------------------------------------------------------------------------------------------

SAMPLE_ARGS = ["--small", "--subjects", "3", "--seed", "1", "--workers", "2"]


def sample_cmd(out):
    return CKPP + ["sample", out, *SAMPLE_ARGS]


def tree_digest(root: str) -> str:
    """Every file under root (name and bytes): videos, PNG frames, landmark files, truth.json, contact sheet."""
    h = hashlib.sha256()
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            p = os.path.join(dirpath, name)
            h.update(os.path.relpath(p, root).encode())
            with open(p, "rb") as fh:
                h.update(hashlib.sha256(fh.read()).digest())
    return h.hexdigest()


def bench_sample(work, n) -> dict:
    """kill -9 `ckpp sample` (2 spawned render workers) at points picked by progress, then --resume."""
    base = os.path.join(work, "sample")
    os.makedirs(base)
    t_ref, t_work = timed_run(sample_cmd("ref"), base)
    want = tree_digest(os.path.join(base, "ref"))
    with open(os.path.join(base, "ref", "truth.json")) as fh:
        n_clips = len(json.load(fh)["clips"])
    trials = []
    for i in range(n):
        out = f"raw-{i:02d}"
        done_dir = os.path.join(base, out + ".partial", ".ckpp-sample-done")

        def jobs_done():
            try:
                return sum(f.endswith(".json") for f in os.listdir(done_dir))
            except OSError:
                return 0

        # kill points by progress: 0.5 s into start-up, once the render workers run, after j clip jobs are
        # finished (j spread over the run), once truth.json is written into OUT.partial (just before the
        # rename), and after the end (no kill: --resume of a finished OUT_DIR)
        events = [("startup", 0), ("workers", 0)] + [("jobs", j) for j in range(2, 24, 3)] + [("truth", 0), ("end", 0)]
        kind, j = events[round(i * (len(events) - 1) / max(1, n - 1))]
        until = {"startup": None, "workers": lambda p: bool(live_children(p.pid)),
                 "jobs": lambda p, j=j: jobs_done() >= j,
                 "truth": lambda p: os.path.exists(os.path.join(base, out + ".partial", "truth.json")),
                 "end": lambda p: False}[kind]
        tr = kill_at(sample_cmd(out), base, 0.5 if kind == "startup" else 0.0, marker=out, until=until)
        tr["kill_point"] = kind + (f" {j}" if kind == "jobs" else "")
        tr["jobs_done_at_kill"] = jobs_done()
        tr["partial_left"] = os.path.isdir(os.path.join(base, out + ".partial"))
        tr["out_complete"] = os.path.isfile(os.path.join(base, out, "truth.json"))
        t0 = time.monotonic()
        res = run(sample_cmd(out) + ["--resume"], base)
        tr["resume_s"] = round(time.monotonic() - t0, 2)
        tr["resume_rc"] = res.returncode
        tr["resume_note"] = next((ln for ln in res.stderr.splitlines() if "resum" in ln or "complete" in ln), "")
        if res.returncode != 0:
            tr["resume_error"] = (res.stderr or res.stdout).strip().splitlines()[-1:]
        tr["identical"] = res.returncode == 0 and tree_digest(os.path.join(base, out)) == want
        tr["left_behind"] = sorted(f for f in os.listdir(base) if f.startswith(out) and f != out)
        trials.append(tr)
        print(f"sample #{i}: {tr}", flush=True)
        shutil.rmtree(os.path.join(base, out), ignore_errors=True)
    out = summary(trials, t_ref, t_work)
    out["clips"] = n_clips
    out["jobs_kept_by_resume"] = sum(int(t["resume_note"].split("kept ")[1].split()[0])
                                     for t in trials if "kept " in t["resume_note"])
    return out


# ---- train --------------------------------------------------------------------------------------------

TRAIN_CFG = {"preset": "tiny", "ckpt_every": 2, "sample_every": 100000, "log_every": 1, "batch_size": 2}


def train_cmd(data, out, steps):
    return CKPP + ["train", data, "--emotion", "surprise", "--config", "cfg.json", "--steps", str(steps),
                   "--out", out, "--quiet"]


def weights_digest(run_dir: str) -> str:
    """The final checkpoint's networks and optimiser states, bitwise (not its timings or versions)."""
    import torch

    from models.checkpoint import read_checkpoint

    ck = read_checkpoint(run_dir)
    h = hashlib.sha256(str(ck["step"]).encode())

    def feed(obj):
        if isinstance(obj, torch.Tensor):
            h.update(str((obj.dtype, tuple(obj.shape))).encode())
            h.update(obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if obj.numel() else b"")
        elif isinstance(obj, dict):
            for k in sorted(obj, key=str):
                h.update(str(k).encode())
                feed(obj[k])
        elif isinstance(obj, (list, tuple)):
            for x in obj:
                feed(x)
        else:
            h.update(repr(obj).encode())

    feed(ck["modules"])
    feed(ck["optimizers"])
    return h.hexdigest()


def bench_train(work, raw, n, steps) -> dict:
    base = os.path.join(work, "train")
    os.makedirs(base)
    r = run(CKPP + ["prepare", raw, "data.h5", "--size", "72", "--workers", "2", "--quiet"], base)
    assert r.returncode == 0, r.stderr + r.stdout
    with open(os.path.join(base, "cfg.json"), "w") as fh:
        json.dump(TRAIN_CFG, fh)
    t_ref, t_work = timed_run(train_cmd("data.h5", "runs/ref", steps), base)
    want = weights_digest(os.path.join(base, "runs/ref"))
    trials = []
    for i in range(n):
        out = f"runs/kill-{i:02d}"
        # kill points by progress, not time (a training step's time swings 10x with the machine's load):
        # once its loader workers run (no step yet), right after step j is logged for j spread over the run,
        # and once more with no kill before the end (--resume of a finished run)
        metrics = os.path.join(base, out, "metrics.jsonl")

        def logged():
            try:
                with open(metrics) as fh:
                    return sum(1 for _ in fh)
            except OSError:
                return 0

        if i == 0:
            until = lambda p: bool(live_children(p.pid))  # noqa: E731
        elif i < n - 1:
            j = max(1, round(i * steps / max(1, n - 2)))
            until = lambda p, j=j: logged() >= j  # noqa: E731
        else:
            until = lambda p: False  # noqa: E731
        tr = kill_at(train_cmd("data.h5", out, steps), base, 0, marker=out, until=until)
        tr["steps_logged_at_kill"] = logged()
        from models.checkpoint import list_checkpoints

        ck = list_checkpoints(os.path.join(base, out))
        tr["checkpoint_step_on_disk"] = int(os.path.basename(ck[-1])[5:13]) if ck else 0
        res = run(train_cmd("data.h5", out, steps) + ["--resume"], base)
        tr["resume_rc"] = res.returncode
        if res.returncode != 0:
            tr["resume_error"] = (res.stderr or res.stdout).strip().splitlines()[-1:]
        tr["identical"] = res.returncode == 0 and weights_digest(os.path.join(base, out)) == want
        trials.append(tr)
        print(f"train #{i}: {tr}", flush=True)
        shutil.rmtree(os.path.join(base, out), ignore_errors=True)
    return summary(trials, t_ref, t_work)


def summary(trials, t_ref, t_work) -> dict:
    return {"uninterrupted_s": round(t_ref, 2), "first_worker_at_s": round(t_work, 2), "kills": len(trials),
            "killed_mid_run": sum(not t["ended_before_kill"] for t in trials),
            "orphans": sum(t["orphans"] for t in trials),
            "trials_with_orphans": sum(t["orphans"] > 0 for t in trials),
            "resume_failures": sum(t["resume_rc"] != 0 for t in trials),
            "identical": sum(t["identical"] for t in trials), "trials": trials}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prepare-kills", type=int, default=10, help="kills per worker count (1 and 2)")
    ap.add_argument("--train-kills", type=int, default=10)
    ap.add_argument("--train-steps", type=int, default=8)
    ap.add_argument("--control-kills", type=int, default=3, help="kills of prepare --workers 2 with the wiring off")
    ap.add_argument("--sample-kills", type=int, default=10, help="kills of ckpp sample (2 render workers)")
    ap.add_argument("--only", default=None, metavar="LIST",
                    help="run only these parts (comma-separated: prepare, control, train, sample); their results "
                         "replace those parts in --out, the others are kept")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "bm_kill_resume.json"))
    a = ap.parse_args()
    parts = set(a.only.split(",")) if a.only else {"prepare", "control", "train", "sample"}
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="bm_kill_resume-")
    res = {}
    if a.only and os.path.isfile(a.out):
        with open(a.out) as fh:
            res = json.load(fh)
    try:
        raw = os.path.join(work, "raw")
        if parts & {"prepare", "control", "train"}:
            r = run(CKPP + ["sample", "raw", "--small", "--subjects", "2", "--seed", "0"], work)
            assert r.returncode == 0, r.stderr
            res.update({"data": "ckpp sample --small --subjects 2 --seed 0; prepare --size 48 --shard-size 200K (several "
                                "shards); train: tiny config, batch 2, ckpt every 2 steps, 2 loader workers, CPU",
                        "cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()[0]})
        if a.prepare_kills and "prepare" in parts:
            res["prepare"] = {f"workers_{w}": bench_prepare(work, raw, w, a.prepare_kills) for w in (1, 2)}
        if a.control_kills and "control" in parts:
            res["prepare_control_without_die_with_parent"] = bench_prepare(work, raw, 2, a.control_kills, control=True)
        if a.train_kills and "train" in parts:
            res["train"] = bench_train(work, raw, a.train_kills, a.train_steps)
            res["train"]["steps"] = a.train_steps
        if a.sample_kills and "sample" in parts:
            t1, load = time.monotonic(), os.getloadavg()[0]
            res["sample"] = bench_sample(work, a.sample_kills)
            res["sample"].update(command="ckpp sample OUT " + " ".join(SAMPLE_ARGS), load_avg_start=load,
                                 seconds=round(time.monotonic() - t1, 1))
        if not a.only:
            res["seconds"] = round(time.monotonic() - t0, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as fh:
        json.dump(res, fh, indent=1)
    brief = {k: {kk: vv for kk, vv in v.items() if kk != "trials"} if isinstance(v, dict) and "trials" in v else v
             for k, v in res.items()}
    for k, v in res.get("prepare", {}).items():
        brief[f"prepare {k}"] = {kk: vv for kk, vv in v.items() if kk != "trials"}
    brief.pop("prepare", None)
    print(json.dumps(brief, indent=1))


if __name__ == "__main__":
    main()
