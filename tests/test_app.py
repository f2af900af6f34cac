"""`ckpp app`: the page's handlers give the CLI's messages, the command says how to install Gradio when it is
missing, and the real page works in a real browser (headless Chromium driven by Playwright): upload a shipped
photo, move the happy slider, the preview and the video follow; a bad upload shows the error; nothing but
localhost is contacted; no process is left behind."""
import importlib.util
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib

import numpy as np
import pytest
from click.testing import CliRunner

from ckpp_tools.cli import main
from tests._browser import chromium, local_only_context
from tests._tiny_run import make_joint_run

OBAMA = os.path.join(os.path.dirname(__file__), "..", "ckpp_tools", "data", "unlike", "obama.jpg")


def huge_png(path) -> None:
    """A PNG header claiming 20000x10000 pixels (200 MP) and no pixels: refused before decoding."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 10000, 8, 2, 0, 0, 0))
                 + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_joint_run(tmp_path_factory.mktemp("app") / "runs" / "ours-happy+surprise")


def test_the_page_says_what_the_cli_says(run, tmp_path, monkeypatch):
    from models.app import Studio, error_text

    studio = Studio(runs=os.path.dirname(run), device="cpu", out_dir=str(tmp_path / "out"))
    assert "astronaut (skimage)" in studio.photos and "obama (ckpp unlike)" in studio.photos
    junk, big, wall = tmp_path / "junk.jpg", tmp_path / "big.png", tmp_path / "wall.png"
    junk.write_text("not an image")
    huge_png(big)
    import imageio.v3 as iio

    iio.imwrite(wall, np.full((120, 160, 3), 200, np.uint8))
    for path, what in ((junk, "not a decodable image"), (big, "megapixels (200 MP)"),
                       (wall, "no face found in the photo")):
        monkeypatch.chdir(tmp_path)           # the CLI given the file's name, as the page names an upload
        cli = CliRunner().invoke(main, ["generate", run, path.name, "--emotion", "happy", "-o", "x.mp4"])
        assert cli.exit_code != 0
        for call in (lambda: studio.video(run, str(path), path.name, {"happy": 1.0}),
                     lambda: studio.preview(run, str(path), path.name, {"happy": 1.0})):
            with pytest.raises(Exception) as e:
                call()
            text = error_text(e.value)
            assert what in text and path.name in text and text in cli.output, (text, cli.output)
    r = studio.video(run, studio.photos["obama (ckpp unlike)"], "obama.jpg", {"happy": 0.8}, frames=4, fps=4)
    assert r["frames"].shape[0] == 4 and os.path.isfile(r["mp4"]) and os.path.isfile(studio.gif(r["mp4"]))
    assert "4 frames" in r["status"] and "obama-happy0.80" in r["mp4"]
    studio.close()
    assert not os.path.exists(studio.out_dir)


def test_without_gradio_the_command_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    res = CliRunner().invoke(main, ["app"])
    assert res.exit_code == 1 and "needs Gradio, which is not installed" in res.output
    assert 'pip install -e ".[app]"' in res.output and "Traceback" not in res.output


def test_app_help_imports_neither_gradio_nor_torch():
    code = ("import sys; from ckpp_tools.cli import main; main(['app', '--help'], standalone_mode=False); "
            "print('gradio' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--share" in out and out.strip().endswith("False False"), out


def test_a_bad_model_is_the_clis_error_and_leaves_nothing(tmp_path, monkeypatch):
    if importlib.util.find_spec("gradio") is None:
        pytest.skip('gradio is not installed (pip install -e ".[app]")')
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    before = dict(os.environ)
    try:
        res = CliRunner().invoke(main, ["app", "--model", str(tmp_path / "nope"), "--port", str(_free_port())])
    finally:                            # launch sets Gradio's variables (GRADIO_TEMP_DIR...): not for later tests
        for k in set(os.environ) - set(before):
            del os.environ[k]
    assert res.exit_code == 1 and "no such checkpoint file or run folder" in res.output, res.output
    assert not [d for d in os.listdir(tmp_path) if d.startswith("ckpp-app-")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc, log, timeout: float = 60.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"ckpp app exited with {proc.returncode}:\n{open(log).read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"ckpp app did not answer within {timeout:.0f} s:\n{open(log).read()}")


@pytest.mark.timeout(180)
def test_the_page_in_a_real_browser(run, tmp_path):
    if importlib.util.find_spec("gradio") is None:
        pytest.skip('gradio is not installed (pip install -e ".[app]")')
    if importlib.util.find_spec("playwright") is None:
        pytest.skip('playwright is not installed (pip install -e ".[app]"; no `playwright install` needed)')
    browser_path = chromium()
    if browser_path is None:
        pytest.skip("no Chromium here (apt-get install chromium, or set CKPP_CHROMIUM); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    from ckpp_tools.lifecycle import is_alive, popen_kwargs

    port = _free_port()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    kw = popen_kwargs()
    kw["env"]["TMPDIR"] = str(tmp)                 # the app's output folder lands here: checked below
    log = tmp_path / "app.log"
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "ckpp_tools.cli", "app", "--model", run, "--runs",
                             os.path.dirname(run), "--port", str(port), "--device", "cpu"], cwd=tmp_path,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, **kw)
    url = f"http://127.0.0.1:{port}/"
    outside = []
    try:
        _wait_http(url, proc, log)
        t_up = time.time() - t0
        with sync_playwright() as p:
            # anything not on this machine is recorded and refused
            browser, ctx = local_only_context(p, browser_path, outside, viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            page.goto(url)
            page.locator("#upload input[type=file]").set_input_files(OBAMA)
            page.wait_for_selector("#video video[src]", timeout=60000)
            t_video = time.time() - t0
            first_src = page.locator("#video video").get_attribute("src")
            peak_src = page.locator("#peak img").get_attribute("src")
            assert "frames" in page.locator("#status textarea").input_value()

            # move the happy slider from 1 to about 0.4 with the mouse: the preview follows, the video on release
            box = page.locator("#w-happy input[type=range]").bounding_box()
            y = box["y"] + box["height"] / 2
            page.mouse.move(box["x"] + box["width"] - 3, y)
            page.mouse.down()
            t_drag = time.time()
            for k in range(1, 11):
                page.mouse.move(box["x"] + box["width"] * (1 - 0.06 * k), y)
            page.wait_for_function("s => document.querySelector('#peak img')?.src !== s", arg=peak_src,
                                   timeout=20000)
            t_preview = time.time() - t_drag
            page.mouse.up()
            page.wait_for_function("s => document.querySelector('#video video')?.src !== s", arg=first_src,
                                   timeout=60000)
            value = float(page.locator("#w-happy input[type=number]").input_value())
            assert 0.2 <= value <= 0.6, value
            src = page.locator("#video video").get_attribute("src")
            data = page.request.get(src).body()
            (tmp_path / "v.mp4").write_bytes(data)
            import imageio.v3 as iio

            frames = iio.imread(tmp_path / "v.mp4")
            assert len(frames) == 16
            # the peak is not frame 0: the shipped motion model moves the face's own pixels, so most of the crop
            # stays as it is (mean change ~1 level) while the mouth and brows move by tens of levels
            assert np.percentile(np.abs(frames[-1].astype(int) - frames[0]), 99) > 10
            stem = f"obama-happy{value:.2f}"         # its mp4, then its GIF, offered for download

            # meanwhile, in a second tab: a text file named .jpg gives the CLI's message on the page
            junk = tmp_path / "junk.jpg"
            junk.write_text("not an image")
            bad = ctx.new_page()
            bad.goto(url)
            bad.locator("#upload input[type=file]").set_input_files(str(junk))
            bad.wait_for_function("() => document.querySelector('#status textarea')?.value.includes('Error')",
                                  timeout=30000)
            text = bad.locator("#status textarea").input_value()
            assert "junk.jpg: not a decodable image" in text and "fix: pass a JPEG" in text, text

            page.wait_for_function("v => (document.querySelector('#files')?.innerText || '').split(v).length > 2",
                                   arg=stem, timeout=60000)
            names = page.locator("#files").inner_text()
            assert stem in names and ".mp4" in names and ".gif" in names, names
            t_done = time.time() - t0
            browser.close()
        print(f"\napp up {t_up:.1f} s, first video in the browser {t_video:.1f} s after start, preview "
              f"{t_preview:.2f} s after the drag began, all checked at {t_done:.1f} s")
    finally:
        t_stop = time.time()
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    print(f"app stopped {time.time() - t_stop:.1f} s after SIGTERM")
    assert outside == [], f"the page contacted other hosts: {outside}"
    assert proc.returncode is not None and not is_alive(proc.pid)
    assert not [d for d in os.listdir(tmp) if d.startswith("ckpp-app-")], "the app left its output folder behind"
    assert "Traceback" not in log.read_text(), log.read_text()
