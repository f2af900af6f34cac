"""Fuzz the readers people feed files to, through the real CLI commands, and record how each case ended.

Readers: video decode and frame folders (`ckpp prepare`), CK+ Emotion/Landmarks text files (`prepare`), the
`--labels` CSV (`prepare --labels`), photos (`ckpp generate`), checkpoints (`generate`), prepared HDF5
(`ckpp train`, `ckpp inspect`). Cases: empty, truncated at 10/50/90 %, bit-flipped, wrong type, huge
(a 12,000x12,000 photo / frame, a 10,000-frame clip with --max-frames, a 20,000-row CSV, ...).

Each case is one subprocess (`python -m ckpp_tools.cli ...`) under a wall-clock timeout; its end is one of
  error      a clear message ("Error: <file>: ...", no traceback), exit 1
  row        `prepare` finished and the manifest has the clip's row (reason recorded)
  ok         the command succeeded (e.g. a bit flip that hit only pixel data)
  traceback  a Python traceback reached the user
  hang       killed at the timeout
  memory     peak RSS of the command over --mem-limit-mb, or a MemoryError
  crash      killed by a signal (segfault, ...)

    python benchmarks/fuzz_readers.py [--out benchmarks/results/fuzz_readers.json] [--only video,photo]

Setup (a few minutes on 2 cores): `ckpp sample --small`, `ckpp prepare --size 64`, 3 steps of
`ckpp train --config tiny`; everything lives in a temporary folder that is removed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TIMEOUT = 150.0      # seconds per case (prepare's own per-clip --timeout is 60)
MEM_LIMIT_MB = 3000  # peak RSS (sampled every 0.1 s, command + workers) above this is reported as 'memory'


# ---- running one case --------------------------------------------------------------------------------------

def run_cli(args: list[str], cwd: str, timeout: float = TIMEOUT) -> dict:
    """Run `ckpp ARGS` in its own process group; return rc, seconds, peak RSS (MB) and the output."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-m", "ckpp_tools.cli", *args], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        rc, rss, hung = None, 0.0, False
        while rc is None:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                rc = os.waitstatus_to_exitcode(status)
                break
            rss = max(rss, _group_rss_mb(proc.pid))
            if time.perf_counter() - t0 > timeout:
                hung = True
                os.killpg(proc.pid, signal.SIGKILL)
                _, status = os.waitpid(proc.pid, 0)
                rc = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.1)
        proc.returncode = rc
        try:  # whatever the command left behind in its group (workers) goes too
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return {"rc": rc, "seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(rss, 1), "hung": hung,
            "output": text}


def _group_rss_mb(pgid: int) -> float:
    """Resident memory (MB) of every live process in the group (the command and its workers), now.
    (ru_maxrss is no use here: Linux carries the parent's high-water mark into a forked child.)"""
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 (pgrp), counted after the ')' of the command name
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: rss in pages
        except (OSError, ValueError, IndexError):
            continue
    return total / 2 ** 20


def classify(res: dict, row: dict | None = None) -> tuple[str, str]:
    """(outcome, the line that shows it)."""
    text = res["output"]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    err = next((ln for ln in lines if ln.startswith("Error:")), "")
    if res["hung"]:
        return "hang", f"killed after {res['seconds']:.0f}s"
    if "MemoryError" in text or "bad_alloc" in text or res["peak_rss_mb"] > MEM_LIMIT_MB:
        return "memory", f"peak RSS {res['peak_rss_mb']:.0f} MB"
    if "Traceback (most recent call last)" in text:
        return "traceback", next((ln for ln in reversed(lines) if not ln.startswith(" ")), "")[:300]
    if res["rc"] is not None and res["rc"] < 0:
        return "crash", f"signal {-res['rc']}"
    if res["rc"] != 0 and not err and "contract violation(s)" in text:  # `inspect --validate`'s report
        err = next((ln.strip() for ln in lines if ln.strip().startswith("- ")), "")
    if res["rc"] != 0:
        return ("error", err[:300]) if err else ("unclear", (lines[-1] if lines else "")[:300])
    if row is not None:
        why = row.get("reason") or "accepted"
        return "row", f"{why}: {str(row.get('detail', ''))[:200]}"
    return "ok", (lines[-1] if lines else "")[:300]


# ---- making broken files -------------------------------------------------------------------------------------

def truncate(data: bytes, frac: float) -> bytes:
    return data[: int(len(data) * frac)]


def bitflip(data: bytes, n: int = 24, seed: int = 0) -> bytes:
    """n single-bit flips spread over the file (header included: real corruption does not spare it)."""
    b = bytearray(data)
    rng = np.random.default_rng(seed)
    for pos in rng.integers(0, len(b), n):
        b[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def variants(data: bytes, wrong: bytes) -> dict[str, bytes]:
    return {"empty": b"", "truncated_10": truncate(data, 0.1), "truncated_50": truncate(data, 0.5),
            "truncated_90": truncate(data, 0.9), "bit_flipped": bitflip(data), "wrong_type": wrong}


def png_bytes(img: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", img)
    return buf.tobytes()


def jpg_bytes(img: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return buf.tobytes()


# ---- the readers -------------------------------------------------------------------------------------------

class Fuzz:
    def __init__(self, work: str):
        self.work = work
        self.results: list[dict] = []
        self.n = 0

    def record(self, reader: str, case: str, command: str, res: dict, row: dict | None = None):
        outcome, line = classify(res, row)
        line = re.sub(r"\S*/cases/\d{3}-[^/]+/", "", line).replace(self.work + os.sep, "")
        self.results.append({"reader": reader, "case": case, "command": command, "outcome": outcome, "line": line,
                             "rc": res["rc"], "seconds": res["seconds"], "peak_rss_mb": res["peak_rss_mb"]})
        print(f"{reader:12s} {case:16s} {outcome:9s} {res['seconds']:6.1f}s {res['peak_rss_mb']:6.0f}MB  {line[:110]}",
              flush=True)
        if outcome in ("traceback", "unclear"):
            print("    " + res["output"][-1500:].replace("\n", "\n    "), flush=True)

    def case_dir(self, name: str) -> str:
        self.n += 1
        d = os.path.join(self.work, "cases", f"{self.n:03d}-{name}")
        os.makedirs(d)
        return d

    def prepare_case(self, reader: str, case: str, build, source: str, extra: list[str] = ()):
        """build(raw) writes the RAW tree; the case's clip is `source` (relative to RAW)."""
        from ckpp_tools.reader import open_dataset

        d = self.case_dir(f"{reader}-{case}")
        raw = os.path.join(d, "raw")
        os.makedirs(raw)
        build(raw)
        out = os.path.join(d, "out.h5")
        args = ["prepare", raw, out, "--size", "64", "--workers", "1", "--quiet", "--timeout", "60", *extra]
        res = run_cli(args, d)
        row = None
        if res["rc"] == 0 and not res["hung"]:
            try:
                rows = {r["source"]: r for r in open_dataset(out).manifest.to_dict("records")}
                row = rows.get(source, {"reason": "MISSING ROW", "detail": f"no row for {source}"})
            except Exception as exc:  # the output must open: say so if not
                row = {"reason": "OUTPUT UNREADABLE", "detail": f"{type(exc).__name__}: {exc}"}
        self.record(reader, case, " ".join(["ckpp prepare", *extra]), res, row)
        shutil.rmtree(d, ignore_errors=True)


def fuzz_video(fz: Fuzz, base: dict):
    import cv2

    data = open(base["video"], "rb").read()
    cases = variants(data, png_bytes(np.full((64, 64, 3), 200, np.uint8)))
    cases["wrong_type_text"] = b"this is not a video\n" * 50
    for case, blob in cases.items():
        def build(raw, blob=blob):
            os.makedirs(os.path.join(raw, "P001"))
            open(os.path.join(raw, "P001", "happy_01.mp4"), "wb").write(blob)
        fz.prepare_case("video", case, build, "P001/happy_01.mp4")

    def long_clip(raw):
        from ckpp_tools.sample import write_mp4

        frames = [cv2.resize(f, (80, 60)) for f in base["frames"]]
        write_mp4(os.path.join(raw, "P001", "happy_01.mp4"), [frames[i % len(frames)] for i in range(10000)])
    fz.prepare_case("video", "10000_frames", long_clip, "P001/happy_01.mp4", ["--max-frames", "300"])

    def huge_frames(raw):
        from ckpp_tools.sample import write_mp4

        big = cv2.resize(base["frames"][0], (4096, 3072))
        write_mp4(os.path.join(raw, "P001", "happy_01.mp4"), [big] * 6)
    fz.prepare_case("video", "4096x3072", huge_frames, "P001/happy_01.mp4")


def fuzz_frames(fz: Fuzz, base: dict):
    import cv2

    pngs = [png_bytes(cv2.cvtColor(f, cv2.COLOR_RGB2BGR)) for f in base["frames"][:8]]
    for case in ("empty", "truncated_10", "truncated_50", "truncated_90", "bit_flipped", "wrong_type"):
        def build(raw, case=case):
            d = os.path.join(raw, "P001", "happy_01")
            os.makedirs(d)
            for i, p in enumerate(pngs):
                blob = variants(p, b"not an image\n" * 20)[case]
                open(os.path.join(d, f"{i:03d}.png"), "wb").write(blob)
        fz.prepare_case("frame_folder", case, build, "P001/happy_01")

    def one_bad(raw):
        d = os.path.join(raw, "P001", "happy_01")
        os.makedirs(d)
        for i, p in enumerate(pngs):
            open(os.path.join(d, f"{i:03d}.png"), "wb").write(truncate(p, 0.5) if i == 3 else p)
    fz.prepare_case("frame_folder", "one_truncated", one_bad, "P001/happy_01")

    def many(raw):
        d = os.path.join(raw, "P001", "happy_01")
        os.makedirs(d)
        small = [png_bytes(cv2.cvtColor(cv2.resize(f, (80, 60)), cv2.COLOR_RGB2BGR)) for f in base["frames"]]
        for i in range(10000):
            open(os.path.join(d, f"{i:05d}.png"), "wb").write(small[i % len(small)])
    fz.prepare_case("frame_folder", "10000_frames", many, "P001/happy_01", ["--max-frames", "300"])

    def huge(raw):
        d = os.path.join(raw, "P001", "happy_01")
        os.makedirs(d)
        big = png_bytes(cv2.cvtColor(cv2.resize(base["frames"][0], (12000, 12000), interpolation=cv2.INTER_NEAREST),
                                     cv2.COLOR_RGB2BGR))
        for i in range(3):
            open(os.path.join(d, f"{i:03d}.png"), "wb").write(big)
    fz.prepare_case("frame_folder", "12000x12000", huge, "P001/happy_01")


def _ck_tree(raw: str, sample_raw: str):
    """S005/001 only (a labelled CK+ sequence with Emotion and Landmarks files)."""
    for part in ("cohn-kanade-images", "Emotion", "Landmarks"):
        src = os.path.join(sample_raw, "CK+", part, "S005", "001")
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(raw, "CK+", part, "S005", "001"))


def fuzz_ck_text(fz: Fuzz, base: dict):
    src = "CK+/cohn-kanade-images/S005/001"
    emo_dir = os.path.join(base["raw"], "CK+", "Emotion", "S005", "001")
    emo_name = sorted(os.listdir(emo_dir))[0]
    emo = open(os.path.join(emo_dir, emo_name), "rb").read()
    cases = variants(emo, np.random.default_rng(1).bytes(300))
    cases.update({"nan": b"   nan\n", "huge_number": b"   1e+308\n", "infinite": b"   inf\n", "huge_file": b"   5.0000000e+00\n" * 400000})
    for case, blob in cases.items():
        def build(raw, blob=blob):
            _ck_tree(raw, base["raw"])
            open(os.path.join(raw, "CK+", "Emotion", "S005", "001", emo_name), "wb").write(blob)
        fz.prepare_case("ck_emotion", case, build, src)

    lm_dir = os.path.join(base["raw"], "CK+", "Landmarks", "S005", "001")
    names = sorted(os.listdir(lm_dir))
    lm = open(os.path.join(lm_dir, names[0]), "rb").read()
    cases = variants(lm, np.random.default_rng(2).bytes(2000))
    cases.update({"nan": b"   nan   nan\n" * 68, "huge_number": b"   1e+308   -1e+308\n" * 68,
                  "wrong_shape": b"   1.0   2.0   3.0\n" * 10, "huge_file": b"   1.0e+01   2.0e+01\n" * 300000})
    for case, blob in cases.items():
        def build(raw, blob=blob):
            _ck_tree(raw, base["raw"])
            for n in names:  # every frame's file of the sequence
                open(os.path.join(raw, "CK+", "Landmarks", "S005", "001", n), "wb").write(blob)
        fz.prepare_case("ck_landmarks", case, build, src)


def fuzz_csv(fz: Fuzz, base: dict):
    good = "path,subject,emotion\nclips/a.mp4,P001,happy\nclips/b.mp4,P002,surprise\n".encode()
    cases = variants(good, np.random.default_rng(3).bytes(500))
    cases["huge_20000_rows"] = ("path,subject,emotion\n" + "".join(
        f"clips/missing_{i}.mp4,P{i % 50:03d},happy\n" for i in range(20000))).encode()
    cases["huge_one_line"] = b"path,subject,emotion\n" + b"x" * 20_000_000 + b",P001,happy\n"
    for case, blob in cases.items():
        def build(raw, blob=blob):
            os.makedirs(os.path.join(raw, "clips"))
            shutil.copy(base["video"], os.path.join(raw, "clips", "a.mp4"))
            shutil.copy(base["video2"], os.path.join(raw, "clips", "b.mp4"))
            open(os.path.join(raw, "labels.csv"), "wb").write(blob)
        _prepare_with_labels(fz, "labels_csv", case, build, "clips/a.mp4")


def _prepare_with_labels(fz: Fuzz, reader, case, build, source):
    from ckpp_tools.reader import open_dataset

    d = fz.case_dir(f"{reader}-{case}")
    raw = os.path.join(d, "raw")
    os.makedirs(raw)
    build(raw)
    out = os.path.join(d, "out.h5")
    args = ["prepare", raw, out, "--labels", os.path.join(raw, "labels.csv"), "--size", "64", "--workers", "1",
            "--quiet", "--timeout", "60"]
    res = run_cli(args, d)
    row = None
    if res["rc"] == 0 and not res["hung"]:
        try:
            rows = {r["source"]: r for r in open_dataset(out).manifest.to_dict("records")}
            row = rows.get(source) or next(iter(rows.values()), {"reason": "MISSING ROW", "detail": ""})
        except Exception as exc:
            row = {"reason": "OUTPUT UNREADABLE", "detail": f"{type(exc).__name__}: {exc}"}
    fz.record(reader, case, "ckpp prepare --labels", res, row)
    shutil.rmtree(d, ignore_errors=True)


def fuzz_photo(fz: Fuzz, base: dict):
    import cv2

    hopper = cv2.imread(base["photo"])
    data = jpg_bytes(hopper)
    cases = variants(data, open(base["video"], "rb").read())
    cases["wrong_type_text"] = b"not a photo\n" * 40
    cases["12000x12000"] = jpg_bytes(cv2.resize(hopper, (12000, 12000), interpolation=cv2.INTER_LINEAR))
    cases["no_face"] = jpg_bytes(np.full((480, 640, 3), 128, np.uint8))
    cases["heic"] = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(4000)   # an iPhone photo's container
    cases["tiny_4x4"] = png_bytes(np.full((4, 4), 90, np.uint8))
    for case, blob in cases.items():
        d = fz.case_dir(f"photo-{case}")
        p = os.path.join(d, "photo.jpg")
        open(p, "wb").write(blob)
        args = ["generate", base["run"], p, "--emotion", "surprise", "--frames", "4", "-o", os.path.join(d, "o.gif")]
        fz.record("photo", case, "ckpp generate RUN PHOTO", run_cli(args, d))
        shutil.rmtree(d, ignore_errors=True)


def fuzz_checkpoint(fz: Fuzz, base: dict):
    import pickle

    ckpt = os.path.join(base["run"], "ckpt-00000003.pt")
    data = open(ckpt, "rb").read()
    cases = variants(data, png_bytes(np.zeros((32, 32), np.uint8)))
    cases["random_bytes"] = np.random.default_rng(4).bytes(50000)

    class Evil:  # unpickling runs os.system: the fuzz checks the marker never appears
        def __reduce__(self):
            return (os.system, (f"touch {os.path.join(fz.work, 'PWNED')}",))
    cases["malicious_pickle"] = pickle.dumps({"format": "ckpp", "x": Evil()}, protocol=2)
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"format": "ckpp", "x": Evil()}, buf)
    cases["malicious_torch_save"] = buf.getvalue()
    for case, blob in cases.items():
        d = fz.case_dir(f"ckpt-{case}")
        run = os.path.join(d, "run")
        shutil.copytree(base["run"], run)
        open(os.path.join(run, "ckpt-00000003.pt"), "wb").write(blob)
        args = ["generate", run, base["photo"], "--emotion", "surprise", "--frames", "4", "-o", os.path.join(d, "o.gif")]
        res = run_cli(args, d)
        if os.path.exists(os.path.join(fz.work, "PWNED")):
            res["output"] += "\nTraceback (most recent call last): MALICIOUS CODE RAN"
        if "weights_only=False" in res["output"]:
            res["output"] += "\nTraceback (most recent call last): the message advises weights_only=False"
        fz.record("checkpoint", case, "ckpp generate RUN PHOTO", res)
        shutil.rmtree(d, ignore_errors=True)


def fuzz_hdf5(fz: Fuzz, base: dict):
    main_h5, shard = base["h5"], base["shard"]
    for target, blob_src in (("index", main_h5), ("shard", shard)):
        data = open(blob_src, "rb").read()
        cases = variants(data, b"not an hdf5 file\n" * 100)
        if target == "shard":
            cases = {k: v for k, v in cases.items() if k in ("empty", "truncated_50", "bit_flipped")}
        for case, blob in cases.items():
            for cmd in ("inspect", "validate", "train"):
                d = fz.case_dir(f"h5-{target}-{case}-{cmd}")
                shutil.copy(main_h5, os.path.join(d, "out.h5"))
                shutil.copy(shard, os.path.join(d, os.path.basename(shard)))
                victim = os.path.join(d, "out.h5" if target == "index" else os.path.basename(shard))
                open(victim, "wb").write(blob)
                if cmd in ("inspect", "validate"):
                    args = ["inspect", os.path.join(d, "out.h5")] + (["--validate"] if cmd == "validate" else [])
                else:
                    args = ["train", os.path.join(d, "out.h5"), "--emotion", "surprise", "--config", "tiny",
                            "--steps", "2", "--out", os.path.join(d, "run"), "--quiet", "--workers", "0"]
                fz.record(f"hdf5_{target}", case, "ckpp inspect --validate" if cmd == "validate" else f"ckpp {cmd}",
                          run_cli(args, d))
                shutil.rmtree(d, ignore_errors=True)


READERS = {"video": fuzz_video, "frames": fuzz_frames, "ck_text": fuzz_ck_text, "csv": fuzz_csv,
           "photo": fuzz_photo, "checkpoint": fuzz_checkpoint, "hdf5": fuzz_hdf5}


def setup(work: str) -> dict:
    """Sample data, a prepared file and a 3-step tiny run, all through the CLI."""
    import imageio.v3 as iio
    import matplotlib.cbook

    raw = os.path.join(work, "sample")
    steps = [] if os.path.exists(os.path.join(work, "run", "latest")) else (["sample", raw, "--small", "--subjects", "3"],
                 ["prepare", raw, os.path.join(work, "out.h5"), "--size", "64", "--workers", "1", "--quiet"],
                 ["train", os.path.join(work, "out.h5"), "--emotion", "surprise", "--config", "tiny", "--steps", "3",
                  "--out", os.path.join(work, "run"), "--quiet", "--workers", "0"])
    for args in steps:
        res = run_cli(args, work, timeout=900)
        if res["rc"] != 0:
            raise SystemExit(f"setup step failed: ckpp {' '.join(args)}\n{res['output'][-3000:]}")
    video = os.path.join(raw, "ours", "P001", "happy_01.mp4")
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        photo_path = fh.name
    shard = sorted(p for p in os.listdir(work) if p.startswith("out-") and p.endswith(".h5"))[0]
    return {"raw": raw, "video": video, "video2": os.path.join(raw, "ours", "P001", "surprise_01.mp4"),
            "frames": list(iio.imiter(video)), "photo": photo_path, "run": os.path.join(work, "run"),
            "h5": os.path.join(work, "out.h5"), "shard": os.path.join(work, shard)}


def main():
    global MEM_LIMIT_MB
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "fuzz_readers.json"))
    ap.add_argument("--only", default="", help="comma-separated readers: " + ",".join(READERS))
    ap.add_argument("--doc-from", default=None, metavar="JSON", help="only rewrite --doc from a results file")
    ap.add_argument("--mem-limit-mb", type=float, default=MEM_LIMIT_MB)
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "fuzz.md"), help="write the table here ('' not)")
    ap.add_argument("--work", default=None, help="reuse (or keep) this work folder: setup runs only once")
    a = ap.parse_args()
    MEM_LIMIT_MB = a.mem_limit_mb
    if a.doc_from:
        write_doc(json.load(open(a.doc_from)), a.doc)
        return
    work = a.work or tempfile.mkdtemp(prefix="ckpp-fuzz-")
    os.makedirs(work, exist_ok=True)
    shutil.rmtree(os.path.join(work, "cases"), ignore_errors=True)
    t0 = time.perf_counter()
    try:
        base = setup(work)
        fz = Fuzz(work)
        for name, fn in READERS.items():
            if not a.only or name in a.only.split(","):
                fn(fz, base)
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    counts: dict[str, int] = {}
    for r in fz.results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    result = {"cases": len(fz.results), "outcomes": counts, "seconds": round(time.perf_counter() - t0, 1),
              "timeout_s": TIMEOUT, "mem_limit_mb": MEM_LIMIT_MB, "results": fz.results}
    if a.only and os.path.exists(a.out):  # a partial rerun updates those readers' rows only
        old = json.load(open(a.out))
        keep = [r for r in old["results"] if not any(r["reader"].startswith(p) for p in _prefixes(a.only))]
        order = list(READERS)   # readers in their usual order, whichever were rerun
        rank = {p: i for i, name in enumerate(order) for p in _prefixes(name)}
        result["results"] = sorted(keep + fz.results, key=lambda r: min(
            (i for p, i in rank.items() if r["reader"].startswith(p)), default=len(order)))
        result["cases"] = len(result["results"])
        result["outcomes"] = {}
        for r in result["results"]:
            result["outcomes"][r["outcome"]] = result["outcomes"].get(r["outcome"], 0) + 1
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out + ".partial", "w") as fh:
        json.dump(result, fh, indent=1)
    os.replace(a.out + ".partial", a.out)
    if a.doc:
        write_doc(result, a.doc)
    print(json.dumps({k: v for k, v in result.items() if k != "results"}))


#: what the first full run found (before the fixes of issue 11's fuzz pass); kept in the doc by write_doc
FOUND = [
    "`--labels` CSV that is binary (wrong type): UnicodeDecodeError traceback -> `labels file is not UTF-8 text`",
    "`--labels` CSV with a 20 MB field: `_csv.Error` traceback -> `labels file is not a readable CSV (field larger "
    "than field limit ...)`",
    "`ckpp train` on a master whose shard is empty or cut at 50 %: h5py OSError traceback -> `shard 'out-00000.h5' "
    "cannot be opened as HDF5 (...)` naming the shard, fix: re-run prepare",
    "`ckpp inspect --validate` on a bit-flipped master: OSError traceback from an attribute read -> one problem "
    "`part of the file cannot be read (...): it is damaged`",
    "a CK+ Emotion file holding `inf` (case added on reading the code): OverflowError traceback while finding "
    "clips -> an `unknown_emotion` row; a 1e308 code no longer prints 300 digits",
    "a clip of 12000x12000 frames: 2.1 GB for 3 frames, unbounded for more (`--max-frames` counts frames, not "
    "bytes) -> decoding stops at a 2 GiB per-clip guard (`video_io.MAX_DECODED_BYTES`, one image <= 16384^2 px) "
    "and the row says so; huge Emotion/Landmarks text files are no longer read whole",
    "checkpoints refused by `weights_only=True` (malicious pickles, also random bytes) repeated torch's advice to "
    "use `weights_only=False` -> `refused: ... could run code` / `not a ckpp checkpoint` / `damaged checkpoint`",
    "a photo cut at 10/50/90 % (an interrupted download): OpenCV decoded a half-grey picture and `generate` "
    "animated it (`ok`) or found no face -> `the file ends before the image does`, fix: copy the photo again "
    "(ckpp_tools/photo_io.py, stop 19; HEIC/AVIF and 4x4 photos added as cases: `HEIC photos cannot be decoded "
    "here` + convert, `only 4x4 pixels`)",
    "a 12000x12000 photo with the default auto start: the neutralising warp built its remap tables over the whole "
    "face box at once (8 bytes a pixel: 2.7 GB peak) -> remapped in bands of 2 MP, the same bytes, 1.6 GB peak "
    "(the decoded photo and its copies)",
]
WEAK = [
    "frame_folder 12000x12000: 3 frames of 144 MP are analysed at full resolution (predictor smoothing and crops "
    "on the huge image) and took longer than `--timeout 60` on the loaded 2-core machine: the row is "
    "`unreadable: ... took longer than --timeout` rather than a size-specific reason (48 s when less loaded). "
    "Analysing a downscaled copy belongs to the tracking code.",
    "bit flips that hit only pixel or weight data load fine (`ok`): nothing checks content checksums.",
    "`ckpp inspect` (the summary) reads only the master, so a damaged shard is `ok` there; `--validate` and "
    "`train` report it.",
    "memory is sampled every 0.1 s (command and its workers), so a short spike can be missed.",
]

OUTCOMES = ("error", "row", "ok", "traceback", "hang", "memory", "crash", "unclear")


def write_doc(result: dict, path: str) -> None:
    """docs/fuzz.md: the count of cases per reader and outcome, then every case's last line."""
    by: dict[str, dict[str, int]] = {}
    for r in result["results"]:
        by.setdefault(r["reader"], {}).setdefault(r["outcome"], 0)
        by[r["reader"]][r["outcome"]] += 1
    cols = [o for o in OUTCOMES if any(o in v for v in by.values())]
    lines = ["# Fuzzing the readers", "",
             "Generated by `python benchmarks/fuzz_readers.py` (results: `benchmarks/results/fuzz_readers.json`). "
             "Every case is one real CLI command (`ckpp prepare`, `generate`, `train`, `inspect`) on a broken file, "
             f"under a {result['timeout_s']:.0f} s timeout, with its resident memory (command and workers) sampled "
             f"every 0.1 s. {result['cases']} cases: " +
             ", ".join(f"{n} {o}" for o, n in sorted(result["outcomes"].items(), key=lambda kv: -kv[1])) + ".", "",
             "Outcomes: **error** a clear message naming the file (exit 1, no traceback); **row** `prepare` went on "
             "and the clip got a manifest row with its reason; **ok** the command succeeded (the damage hit only "
             "data it tolerates, e.g. a bit flip in a checkpoint's weights or a shard's pixels); **traceback** / **hang** / "
             "**memory** (peak over "
             f"{result['mem_limit_mb']:.0f} MB) / **crash** would be bugs.", "",
             "| reader | " + " | ".join(cols) + " | cases |", "|---|" + "---|" * (len(cols) + 1)]
    for reader, c in by.items():
        lines.append(f"| {reader} | " + " | ".join(str(c.get(o, "")) for o in cols) + f" | {sum(c.values())} |")
    lines += ["", "## Every case", "", "| reader | case | command | outcome | s | peak MB | what the user saw |",
              "|---|---|---|---|---|---|---|"]
    for r in result["results"]:
        line = re.sub(r"\S*/cases/\d{3}-[^/]+/", "", r["line"]).replace("|", "/")
        lines.append(f"| {r['reader']} | {r['case']} | `{r['command']}` | {r['outcome']} | {r['seconds']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} | {line[:160]} |")
    lines[lines.index("## Every case"):lines.index("## Every case")] = (
        ["## Found and fixed by this pass", ""] + [f"- {t}" for t in FOUND] +
        ["", "## Still weak", ""] + [f"- {t}" for t in WEAK] + [""])
    with open(path + ".partial", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(path + ".partial", path)


def _prefixes(only: str) -> list[str]:
    m = {"video": ["video"], "frames": ["frame_folder"], "ck_text": ["ck_"], "csv": ["labels_csv"],
         "photo": ["photo"], "checkpoint": ["checkpoint"], "hdf5": ["hdf5_"]}
    return [p for k in only.split(",") for p in m.get(k, [k])]


if __name__ == "__main__":
    main()
