"""`ckpp app` and the Python API, measured: the peak preview per slider move against remaking the video per move
(the naive page), and the real page in headless Chromium: start-up, first video, preview latency per slider move,
what listens and what is contacted. Also writes the page's screenshot for the README (docs/app.png).

    python benchmarks/bm_app.py [--moves 12] [--out benchmarks/results/bm_app.json] [--screenshot docs/app.png]

Needs the app extra (pip install -e ".[app]"), playwright and a system Chromium (apt-get install chromium);
`strace` (optional) lists every connect() the server makes.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
from ckpp_tools.emotions import EXPRESSIONS  # noqa: E402  (after the path is set)
from models.app import opening  # noqa: E402
from tests._browser import local_only_context  # noqa: E402


def api_preview(moves: int, threads: int | None = None) -> dict:
    """ms per slider move: pipe.preview (one decode, cached crop + features) vs the whole 16-frame video."""
    import skimage.data
    import torch

    from models.pipeline import ExpressionPipeline

    if threads:
        torch.set_num_threads(threads)
    pipe = ExpressionPipeline.from_pretrained("pretrained", device="cpu")
    photo = skimage.data.astronaut()
    e = opening(pipe.emotions)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    pipe.preview(photo, {e: 1.0})
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(moves):
        w = float(rng.uniform(0, 1))
        t0 = time.perf_counter()
        pipe.preview(photo, {e: w})
        warm.append(time.perf_counter() - t0)
    naive = []
    for _ in range(3):
        w = float(rng.uniform(0, 1))
        t0 = time.perf_counter()
        pipe(photo, {e: w}, num_frames=16)
        naive.append(time.perf_counter() - t0)
    return {"model": repr(pipe), "emotion": e, "threads": torch.get_num_threads(),
            "preview_first_call_s": round(cold, 3), "preview_per_move_ms_median": round(1000 * statistics.median(warm), 2),
            "preview_per_move_ms_max": round(1000 * max(warm), 2),
            "naive_whole_video_per_move_ms_median": round(1000 * statistics.median(naive), 1),
            "speedup": round(statistics.median(naive) / statistics.median(warm), 1)}


def shrink_png(path: str) -> None:
    """A 256-colour PNG of the screenshot: ~190 KB instead of ~570 KB for the README, text still crisp."""
    from PIL import Image

    im = Image.open(path).convert("RGB")
    im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(pid: int) -> list[str]:
    out = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True).stdout
    return sorted({line.split()[3] for line in out.splitlines() if f"pid={pid}," in line})


def browser(moves: int, screenshot: str | None, trace: bool = False) -> dict:
    """The page in headless Chromium: start-up, first video, preview per drag; `trace`: the server under strace
    (its connect() calls listed; timings then are strace's, and ptrace has frozen the app's threads now and then,
    so the timed run goes without it)."""
    from playwright.sync_api import sync_playwright

    from ckpp_tools.lifecycle import popen_kwargs

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="bm-app-")
    kw = popen_kwargs()
    kw["env"]["TMPDIR"] = tmp
    trace = os.path.join(tmp, "strace.log")
    cmd = [sys.executable, "-m", "ckpp_tools.cli", "app", "--port", str(port), "--device", "cpu", "--runs", tmp]
    if trace and shutil.which("strace"):
        cmd = ["strace", "-f", "--seccomp-bpf", "-qq", "-e", "trace=connect", "-o", trace] + cmd
    log = open(os.path.join(tmp, "app.log"), "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tmp, stdout=log, stderr=subprocess.STDOUT, **kw)
    url = f"http://127.0.0.1:{port}/"
    res: dict = {}
    outside: list[str] = []
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit(open(log.name).read())
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        res["server_up_s"] = round(time.perf_counter() - t0, 2)
        server_pid = proc.pid
        kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if cmd[0] == "strace" and kids:
            server_pid = int(kids[0])
        res["_pid"] = server_pid
        res["listening"] = _listening(server_pid)
        with sync_playwright() as p:
            b, ctx = local_only_context(p, chromium, outside, viewport={"width": 1400, "height": 1000},
                                        device_scale_factor=1)
            page = ctx.new_page()
            page.goto(url)
            page.wait_for_selector("#builtin")
            res["page_loaded_s"] = round(time.perf_counter() - t0, 2)
            # pick Grace Hopper from the built-in photos
            page.locator("#builtin input").click()
            page.get_by_role("option", name=re.compile("grace hopper")).click()
            page.wait_for_selector("#video video[src]", timeout=120000)
            res["first_video_in_browser_s"] = round(time.perf_counter() - t0, 2)
            # slider moves: each a short mouse drag of the slider the page opens at 1, timed until the preview changes
            e = next(n for n in EXPRESSIONS if page.locator(f"#w-{n} input[type=number]").input_value() == "1")
            res["slider"] = e
            box = page.locator(f"#w-{e} input[type=range]").bounding_box()
            y = box["y"] + box["height"] / 2
            lat = []
            pos = 0.97
            for k in range(moves):
                src = page.locator("#peak img").get_attribute("src")
                page.mouse.move(box["x"] + box["width"] * pos, y)
                page.mouse.down()
                pos = 0.35 + 0.6 * ((k * 0.37) % 1.0)
                t1 = time.perf_counter()
                page.mouse.move(box["x"] + box["width"] * pos, y)
                try:
                    page.wait_for_function("s => document.querySelector('#peak img')?.src !== s", arg=src,
                                           timeout=30000)
                except Exception:
                    print(f"no new peak at move {k} (to {pos:.2f}, slider {page.locator(f'#w-{e} input[type=number]').input_value()}) | status:", page.locator("#status textarea").input_value(), flush=True)
                    raise
                lat.append(time.perf_counter() - t1)
                src_v = page.locator("#video video").get_attribute("src")
                page.mouse.up()
                page.wait_for_function("s => document.querySelector('#video video')?.src !== s", arg=src_v,
                                       timeout=60000)
            # end at the full expression (the screenshot shows the most visible peak)
            src_v = page.locator("#video video").get_attribute("src")
            page.mouse.move(box["x"] + box["width"] * pos, y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] + 10, y)
            page.mouse.up()
            page.wait_for_function("s => document.querySelector('#video video')?.src !== s", arg=src_v,
                                   timeout=60000)
            res["browser_preview_per_move_s_median"] = round(statistics.median(lat), 3)
            res["browser_preview_per_move_s_max"] = round(max(lat), 3)
            value = float(page.locator(f"#w-{e} input[type=number]").input_value())
            stem = f"grace_hopper-{e}{value:.2f}"      # the last video's mp4 and GIF, offered for download
            try:
                page.wait_for_function("v => (document.querySelector('#files')?.innerText || '').split(v).length > 2",
                                       arg=stem, timeout=120000)
            except Exception:
                print("waiting for", stem, "| files:", page.locator("#files").inner_text().replace("\n", " "),
                      "| video:", page.locator("#video video").get_attribute("src"), "| status:",
                      page.locator("#status textarea").input_value(), flush=True)
                raise
            if screenshot:
                time.sleep(1.0)
                page.screenshot(path=screenshot, full_page=True)
                shrink_png(screenshot)
            b.close()
    finally:
        app_pid = res.get("_pid", proc.pid)
        try:
            os.kill(app_pid, 15)              # the app itself (under strace, strace ends with it)
        except ProcessLookupError:
            pass
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if sys.exc_info()[0] is not None:     # failed: show the app's log, leave nothing behind
            print(open(log.name).read(), file=sys.stderr)
            shutil.rmtree(tmp, ignore_errors=True)
    res.pop("_pid", None)
    res["browser_requests_outside_localhost"] = outside
    if os.path.isfile(trace):
        text = open(trace).read()
        addrs = sorted(set(re.findall(r'inet_addr\("([^"]+)"\)', text) + re.findall(r'inet_pton\(AF_INET6, "([^"]+)"', text)))
        res["server_connect_addresses"] = addrs
        res["server_connects_outside_localhost"] = [a for a in addrs if a not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")]
    shutil.rmtree(tmp, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=12)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "bm_app.json"))
    ap.add_argument("--screenshot", default=os.path.join(ROOT, "docs", "app.png"))
    ap.add_argument("--skip-browser", action="store_true")
    args = ap.parse_args()
    load = os.getloadavg()
    res = {"command": " ".join(["python", "benchmarks/bm_app.py"] + sys.argv[1:]), "cpus": os.cpu_count(),
           "loadavg_before": [round(x, 2) for x in load], "api_1_thread": api_preview(args.moves, 1)}
    res["api_torch_default_threads"] = api_preview(args.moves, os.cpu_count())
    print(json.dumps({k: res[k] for k in ("api_1_thread", "api_torch_default_threads")}, indent=1), flush=True)
    if not args.skip_browser:
        res["browser"] = browser(args.moves, args.screenshot)
        audit = browser(2, None, trace=True)      # what the server connects to, in a second run under strace
        res["browser"].update({k: v for k, v in audit.items() if k.startswith("server_connect")})
        print(json.dumps(res["browser"], indent=1))
    res["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
