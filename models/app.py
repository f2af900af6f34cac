"""`ckpp app`: sliders over a photo in the browser, thin over models.pipeline.ExpressionPipeline.

Why: control (which expression, how strong, which mix) is what the paper is about, and a person understands
it fastest by moving a slider and watching the face follow. The page does nothing the API does not: it picks a
photo and a model, calls `pipe.preview` while a slider moves (one decode: the face crop and the encoder
features are cached per photo) and `pipe(...)` when it is released, and shows what came back. Errors are the
CLI's CkppError text, in the status box.

Local only: it binds to 127.0.0.1 unless --host says otherwise, `--share` is off unless asked, and Gradio is
told not to phone home (OFFLINE_ENV: no analytics, no version check, no Hugging Face Hub; the default theme's
fonts are local files; server-side rendering, which starts a Node server on a second port, is off).
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
import uuid

import numpy as np

from ckpp_tools import emotions as emo
from ckpp_tools.errors import CkppError

#: set before gradio is imported: no analytics, no version check (api.gradio.app), no Hub calls
OFFLINE_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "DO_NOT_TRACK": "1", "GRADIO_SSR_MODE": "False"}
#: uploads larger than this are refused by Gradio before they reach ckpp (photo_io then checks the pixels)
MAX_FILE_SIZE = "200mb"
#: longer side of the "face found" picture on the page
VIEW_SIDE = 480
INSTALL_FIX = 'pip install -e ".[app]"   (or: pip install gradio)'


def check_gradio() -> None:
    """Not installed -> CkppError saying how to install it (before anything is loaded or written)."""
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise CkppError("the web app needs Gradio, which is not installed", path="ckpp app", fix=INSTALL_FIX)


def require_gradio():
    """import gradio with OFFLINE_ENV set; not installed -> CkppError saying how to install it."""
    check_gradio()
    for k, v in OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio

    return gradio


def builtin_photos(folder: str) -> dict[str, str]:
    """label -> path of the photos the page offers: skimage's astronaut (written to `folder` once), matplotlib's
    Grace Hopper and the faces shipped in ckpp_tools/data/unlike/ (photo_sources.FOLDERS)."""
    import matplotlib

    from ckpp_tools.photo_sources import EXTENSIONS, FOLDERS

    out = {}
    try:
        import imageio.v3 as iio
        import skimage.data

        path = os.path.join(folder, "astronaut.png")
        if not os.path.isfile(path):
            iio.imwrite(path, np.ascontiguousarray(skimage.data.astronaut()[..., :3]))
        out["astronaut (skimage)"] = path
    except (ImportError, OSError):      # a missing sample photo only shortens the list
        pass
    hopper = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    if os.path.isfile(hopper):
        out["grace hopper (matplotlib)"] = hopper
    try:
        unlike = FOLDERS["unlike"]()
        for f in sorted(os.listdir(unlike)):
            if f.lower().endswith(EXTENSIONS):
                out[f"{os.path.splitext(f)[0]} (ckpp unlike)"] = os.path.join(unlike, f)
    except CkppError:
        pass
    return out


def error_text(exc: BaseException) -> str:
    """What the CLI prints for a CkppError (`Error: PATH: what\\n  fix: how`); other exceptions by type."""
    if isinstance(exc, CkppError):
        return f"Error: {exc.format_message()}"
    import traceback

    traceback.print_exception(exc)      # not the user's doing: the whole story goes to the terminal too
    return f"Error: {type(exc).__name__}: {exc}"


def draw_face(photo: np.ndarray, face) -> np.ndarray:
    """The photo (longer side VIEW_SIDE) with the model's crop square and the 68 landmarks drawn."""
    import cv2

    k = min(1.0, VIEW_SIDE / max(photo.shape[:2]))
    img = cv2.resize(photo, (round(photo.shape[1] * k), round(photo.shape[0] * k)), interpolation=cv2.INTER_AREA) \
        if k < 1 else photo.copy()
    t = max(1, round(max(img.shape[:2]) / 240))
    cv2.polylines(img, [np.round(face.corners * k).astype(np.int32)], True, (60, 220, 60), t, cv2.LINE_AA)
    for x, y in face.landmarks * k:
        cv2.circle(img, (int(round(x)), int(round(y))), t, (255, 200, 0), -1, cv2.LINE_AA)
    return img


class Studio:
    """What the page calls, as plain functions (tested without a browser): pipelines by model, cached; one
    output folder per process, removed at exit."""

    def __init__(self, runs: str = "runs", device: str = "auto", out_dir: str | None = None):
        self.runs = runs
        self.device = device
        self.out_dir = out_dir or tempfile.mkdtemp(prefix="ckpp-app-")
        os.makedirs(self.out_dir, exist_ok=True)
        self.photos = builtin_photos(self.out_dir)
        self._pipes: dict = {}
        self._made: dict = {}             # mp4 path -> ExpressionOutput, the last few (for their GIF)
        self._lock = threading.Lock()

    def models(self) -> list[str]:
        from .pipeline import list_models

        return list_models(self.runs)

    def pipeline(self, source: str):
        from .pipeline import ExpressionPipeline

        with self._lock:
            if source not in self._pipes:
                self._pipes[source] = ExpressionPipeline.from_pretrained(source, device=self.device)
            return self._pipes[source]

    @staticmethod
    def weights(pipe, values: dict[str, float]) -> dict[str, float]:
        return {e: float(values.get(e, 0.0) or 0.0) for e in pipe.emotions}

    def video(self, source: str, photo: str, where: str, values: dict[str, float], frames: int = 16,
              fps: float = 8.0, paste_back: bool = False, start: str = "auto", align: bool = True) -> dict:
        """The whole video as .mp4: {mp4, first, peak, face_view, status, seconds, frames}; raises CkppError.
        The GIF is written by gif(mp4) afterwards: Pillow's per-frame palettes take ~10x longer than the video."""
        t0 = time.perf_counter()
        pipe = self.pipeline(source)
        w = self.weights(pipe, values)
        out = pipe(photo, w, int(frames), paste_back=paste_back, align=align, start=start, fps=fps, where=where)
        stem = os.path.splitext(os.path.basename(where))[0] or "photo"
        mix = "+".join(f"{e}{v:.2f}" for e, v in w.items() if v > 0) or "neutral"
        folder = os.path.join(self.out_dir, uuid.uuid4().hex[:8])
        mp4 = out.save(os.path.join(folder, f"{stem}-{mix}.mp4"))
        with self._lock:
            self._made[mp4] = out
            while len(self._made) > 4:
                self._made.pop(next(iter(self._made)))
        secs = time.perf_counter() - t0
        f = out.face
        note = {"neutral": " (lips parted: warped back to neutral first, the models' onset)", "as-is": ""}
        status = (f"{len(out.frames)} frames {out.frames.shape[2]}x{out.frames.shape[1]} at {fps:g} fps in {secs:.1f} s; "
                  f"{pipe.name} step {pipe.meta.get('step')}. Face: crop box ({f.box[0]:.0f}, {f.box[1]:.0f}) to "
                  f"({f.box[2]:.0f}, {f.box[3]:.0f}) px, levelled {f.angle:+.1f} deg, start {f.start}"
                  f"{note.get(f.start, '')}.")
        return {"mp4": mp4, "first": out.first, "peak": out.peak,
                "face_view": draw_face(pipe.read(photo, where), f), "status": status, "seconds": secs,
                "frames": out.frames}

    def gif(self, mp4: str) -> str | None:
        """The GIF beside a video video() made (the same frames and fps); None when it is no longer held. Made in
        a thread of its own at nice +10: the next slider moves' previews come first (during a GIF a preview took
        93 ms instead of 37; with the GIF niced, 34: benchmarks/bm_app.py's machine)."""
        with self._lock:
            out = self._made.get(mp4)
        if out is None:
            return None
        made: list = []

        def work():
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)   # this thread only (Linux)
            except (AttributeError, OSError):
                pass
            try:
                made.append(out.save(os.path.splitext(mp4)[0] + ".gif"))
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                made.append(exc)
        th = threading.Thread(target=work, name="ckpp-gif", daemon=True)
        th.start()
        th.join()
        if isinstance(made[0], BaseException):
            raise made[0]
        return made[0]

    def preview(self, source: str, photo: str, where: str, values: dict[str, float], paste_back: bool = False,
                start: str = "auto", align: bool = True) -> np.ndarray:
        pipe = self.pipeline(source)
        return pipe.preview(photo, self.weights(pipe, values), paste_back=paste_back, start=start, align=align,
                            where=where)

    def warm_up(self, source: str) -> None:
        """Load dlib's detector and predictor and run the model once (on the astronaut) while the page loads and
        the user picks a photo, so the first video does not pay for them (~2-5 s on a busy 2-core machine)."""
        photo = self.photos.get("astronaut (skimage)")
        try:
            if photo:
                pipe = self.pipeline(source)
                pipe.preview(photo, {opening(pipe.emotions): 1.0}, where="astronaut.png")
        except Exception:  # noqa: BLE001 - a warm-up failure shows up (with its message) on first real use
            pass

    def close(self) -> None:
        shutil.rmtree(self.out_dir, ignore_errors=True)


def opening(emotions: list[str]) -> str:
    """The slider at 1 when the page opens: happy where the model knows it (the expression people read best, and
    the shipped joint model's best recognised: 18 of 40 held-out faces), else the model's first."""
    return "happy" if "happy" in emotions else emotions[0]


def full_name(model: str) -> str:
    """"pretrained" as the model list names it ("pretrained:ours-joint"), so it is loaded once."""
    if model == "pretrained":
        from .pretrained import default_name

        return f"pretrained:{default_name()}"
    return model


def build(studio: Studio, model: str = "pretrained"):
    """The gr.Blocks page over `studio`."""
    names = list(emo.EXPRESSIONS)
    model = full_name(model)
    first = studio.pipeline(model)            # a bad model fails before Gradio loads; the page starts warm
    gr = require_gradio()
    models = studio.models()
    if model not in models:
        models = [model] + models

    def values_of(args) -> dict[str, float]:
        return dict(zip(names, args))

    def slider_updates(source):
        known = studio.pipeline(source).emotions
        return [gr.Slider(visible=n in known) for n in names]

    with gr.Blocks(title="ckpp: facial expressions with sliders", analytics_enabled=False) as page:
        gr.Markdown("## ckpp: move a slider, the face follows\nUpload a photo or pick one; one slider per expression "
                    "the model knows (several at once = a mix). The peak follows the slider; the video is made "
                    "when you let go. Everything runs on this machine.")
        photo = gr.State(None)          # (path, where)
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Upload a photo", file_types=["image"], type="filepath", elem_id="upload")
                builtin = gr.Dropdown(choices=list(studio.photos), value=None, label="…or pick a built-in photo",
                                      elem_id="builtin")
                model_box = gr.Dropdown(choices=models, value=model, label="Model (shipped weights or runs/)",
                                        allow_custom_value=True, elem_id="model")
                sliders = [gr.Slider(0.0, 1.0, value=1.0 if n == opening(first.emotions) else 0.0, step=0.05, label=n,
                                     elem_id=f"w-{n}", visible=n in first.emotions) for n in names]
                with gr.Row():
                    frames = gr.Slider(2, 48, value=16, step=1, label="frames", elem_id="frames")
                    fps = gr.Slider(1, 30, value=8, step=1, label="fps", elem_id="fps")
                with gr.Row():
                    paste = gr.Checkbox(False, label="paste back into the photo", elem_id="paste")
                    align = gr.Checkbox(True, label="level tilted eyes", elem_id="align")
                start = gr.Radio(["auto", "as-is", "neutral"], value="auto", label="start (frame 0)",
                                 elem_id="start")
                go = gr.Button("Make the video", variant="primary", elem_id="go")
            with gr.Column(scale=2):
                status = gr.Textbox(label="Status", interactive=False, lines=3, elem_id="status")
                with gr.Row(equal_height=True):
                    face_view = gr.Image(label="Face found", interactive=False, height=300, elem_id="face")
                    peak_view = gr.Image(label="Peak (live, follows the sliders)", interactive=False, height=300,
                                         elem_id="peak")
                with gr.Row(equal_height=True):
                    video = gr.Video(label="Video", interactive=False, autoplay=True, loop=True, height=280,
                                     elem_id="video")
                    first_view = gr.Image(label="First frame", interactive=False, height=280, elem_id="first")
                    last_view = gr.Image(label="Peak frame", interactive=False, height=280, elem_id="last")
                files = gr.File(label="Download", file_count="multiple", interactive=False, elem_id="files")

        opts = [model_box, photo, *sliders, paste, start, align]

        def on_upload(path):
            return (path, os.path.basename(path)) if path else None

        def on_builtin(label):
            return (studio.photos[label], os.path.basename(studio.photos[label])) if label else None

        latest: dict[str, str] = {}     # session -> its newest video: a GIF still queued for an older one is dropped

        def make_video(request, source, ph, *args):
            *ws, p, s, a, n, f = args
            if not ph:
                return None, None, None, None, None, None, "Upload a photo or pick a built-in one.", None
            try:
                r = studio.video(source, ph[0], ph[1], values_of(ws), frames=n, fps=f, paste_back=p, start=s, align=a)
            except Exception as exc:  # noqa: BLE001 - every failure is shown on the page
                return None, None, None, None, None, None, error_text(exc), None
            latest[request.session_hash] = r["mp4"]
            return r["face_view"], r["peak"], r["mp4"], r["first"], r["peak"], [r["mp4"]], r["status"], r["mp4"]

        def make_gif(request, mp4):
            if not mp4 or latest.get(request.session_hash) != mp4:
                return gr.skip()
            gif = studio.gif(mp4)      # a newer video made meanwhile keeps its own files on the page
            return [mp4, gif] if gif and latest.get(request.session_hash) == mp4 else gr.skip()

        # gradio injects the request into a parameter annotated gr.Request (set here: gr is not a module global)
        make_video.__annotations__["request"] = gr.Request
        make_gif.__annotations__["request"] = gr.Request

        def make_preview(source, ph, *args):
            *ws, p, s, a = args
            if not ph:
                return gr.skip(), gr.skip()
            try:
                return studio.preview(source, ph[0], ph[1], values_of(ws), paste_back=p, start=s, align=a), gr.skip()
            except Exception as exc:  # noqa: BLE001
                return None, error_text(exc)

        def on_model(source):
            try:
                studio.pipeline(source)
            except Exception as exc:  # noqa: BLE001
                return [gr.skip()] * len(names) + [error_text(exc)]
            pipe = studio.pipeline(source)
            return slider_updates(source) + [f"{source}: {pipe!r}"]

        made = gr.State(None)           # the last video's mp4 (its GIF follows)
        video_outs = [face_view, peak_view, video, first_view, last_view, files, status, made]
        video_in = [*opts, frames, fps]
        run = dict(fn=make_video, inputs=video_in, outputs=video_outs, concurrency_id="video", concurrency_limit=1,
                   trigger_mode="always_last")
        # always_last: a GIF asked for while an older one is made still comes (Gradio's default "once" dropped it,
        # and the older video's files stayed offered beside the newer video)
        gif = dict(fn=make_gif, inputs=made, outputs=files, concurrency_id="gif", concurrency_limit=1,
                   show_progress="minimal", trigger_mode="always_last")
        upload.upload(on_upload, upload, photo).then(**run).then(**gif)
        builtin.input(on_builtin, builtin, photo).then(**run).then(**gif)
        model_box.input(on_model, model_box, [*sliders, status]).then(**run).then(**gif)
        go.click(**run).then(**gif)
        for sl in sliders:
            sl.input(make_preview, opts, [peak_view, status], concurrency_id="preview", concurrency_limit=1,
                     trigger_mode="always_last", show_progress="hidden")
            sl.release(**run).then(**gif)
    return page


def app_threads(threads: int = 0) -> int:
    """Torch threads per job: the page runs a preview and a video at once, so each gets half the cores (at least
    one). Why: two 2-thread jobs on 2 cores made every OpenMP barrier wait for a descheduled thread; one thread
    each decoded the peak in ~15 ms where two took 0.3-1 s on a busy 2-core machine (benchmarks/bm_app.py)."""
    return threads if threads > 0 else max(1, (os.cpu_count() or 2) // 2)


def launch(model: str = "pretrained", runs: str = "runs", host: str = "127.0.0.1", port: int = 7860,
           share: bool = False, device: str = "auto", threads: int = 0) -> None:
    """Build the page and serve it until interrupted (SIGTERM / Ctrl-C); the output folder is removed."""
    check_gradio()
    import torch

    torch.set_num_threads(app_threads(threads))
    studio = Studio(runs=runs, device=device)

    def stop(signum, frame):              # SIGTERM: remove our files and go (Gradio's orderly close takes ~5 s)
        studio.close()
        os._exit(0)

    previous = signal.signal(signal.SIGTERM, stop)
    # Gradio's copies of uploads and outputs go into our folder, removed at exit (not /tmp/gradio forever);
    # set before gradio is imported (it reads the variable at import)
    os.environ.setdefault("GRADIO_TEMP_DIR", os.path.join(studio.out_dir, "gradio"))
    try:
        page = build(studio, model)
        threading.Thread(target=studio.warm_up, args=(full_name(model),), daemon=True).start()
        page.queue(default_concurrency_limit=1)
        print(f"ckpp app: http://{host}:{port}  (model {model}; Ctrl-C stops it)", flush=True)
        if host not in ("127.0.0.1", "localhost", "::1"):
            print(f"note: --host {host}: the page is reachable from other machines, not only this one", flush=True)
        page.launch(server_name=host, server_port=port, share=share, inbrowser=False, ssr_mode=False,
                    max_file_size=MAX_FILE_SIZE, footer_links=[], show_error=True, quiet=True,
                    allowed_paths=[studio.out_dir] + list(studio.photos.values()))
    finally:
        signal.signal(signal.SIGTERM, previous)
        studio.close()
