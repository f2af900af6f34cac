"""The public Python API: a photo and an expression mix in, a video out, in three lines.

    from ckpp import ExpressionPipeline
    pipe = ExpressionPipeline.from_pretrained("pretrained", device="cpu")   # or a run folder, or a ckpt-*.pt
    out = pipe("me.jpg", {"surprise": 0.8}, num_frames=16)                   # path, PIL image or array
    out.save("me.mp4")                                                       # out.frames: (T,H,W,3) uint8

Why: before it, a notebook user assembled checkpoints, families, photo decoding and crops from internal
modules, and `ckpp generate`, the app and any script each composed them again. This module is the one place
that composes loading a model (models.checkpoint), reading a photo (ckpp_tools.photo_io), the face's geometry
(ckpp_tools.face_geometry) and generation (models.generate.generate_video); the command line and `ckpp app` are
thin over it. Its shape follows Hugging Face diffusers (`from_pretrained`, a call, an output object) because
that is what users of generative models already know. Errors are the CLI's CkppError / UsageError.

`preview(photo, weights)` returns only the peak frame, fast enough to follow a slider: the face crop and the
generator's encoder features are cached per photo, so a new mix costs one decode (models.generator's
encode / combine / decode split), milliseconds at demo size.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ckpp_tools.errors import UsageError
from ckpp_tools.photo_io import as_photo


@dataclass
class FaceInfo:
    """What was found in the photo, in pixels of the photo as given: `box` [x0,y0,x1,y1] around the model's
    crop, `corners` (4,2) of that (possibly rotated) crop square, `angle` the roll levelled out (degrees),
    `start` the start applied ("as-is" | "neutral"), the 68 dlib `landmarks`, the 2x3 `matrix` photo -> crop,
    and `expression` (the photo's fitted smile and mouth opening, ckpp_tools.neutral). `faces`: every face found,
    ranked (ckpp_tools.face_pick.Face), `rank` the one animated (1-based; `face=N` picks another), and `note` the
    line the CLI prints when there are several ('' otherwise)."""
    box: np.ndarray
    corners: np.ndarray
    angle: float
    start: str
    landmarks: np.ndarray
    matrix: np.ndarray
    expression: dict = field(default_factory=dict)
    faces: list = field(default_factory=list)
    rank: int = 1
    note: str = ""

    @classmethod
    def from_report(cls, found: dict, crop_size: int) -> "FaceInfo":
        import cv2

        m = np.asarray(found["matrix"], np.float64)
        inv = cv2.invertAffineTransform(m)
        sq = np.array([[0, 0], [crop_size, 0], [crop_size, crop_size], [0, crop_size]], np.float64)
        corners = sq @ inv[:, :2].T + inv[:, 2]
        box = np.concatenate([corners.min(0), corners.max(0)])
        return cls(box=box, corners=corners, angle=float(found.get("angle", 0.0)), start=str(found.get("start", "as-is")),
                   landmarks=np.asarray(found["landmarks"], np.float64), matrix=m,
                   expression=dict(found.get("expression") or {}), **cls._faces(found))

    @staticmethod
    def _faces(found: dict) -> dict:
        if "faces" not in found:
            return {}
        from ckpp_tools.face_pick import describe

        chosen = found["face"]
        return dict(faces=list(found["faces"]), rank=int(chosen.rank),
                    note=describe(found["faces"], chosen, scale=found.get("photo_scale", 1.0)))


@dataclass
class ExpressionOutput:
    """A generated video: `frames` (T,H,W,3) uint8 from frame 0 (the face as it starts) to the peak,
    `face` (FaceInfo), the `weights` used and `fps` (what save() writes unless told otherwise)."""
    frames: np.ndarray
    face: FaceInfo
    weights: dict
    fps: float = 8.0

    @property
    def first(self) -> np.ndarray:
        return self.frames[0]

    @property
    def peak(self) -> np.ndarray:
        return self.frames[-1]

    def save(self, path, fps: float | None = None) -> str:
        """Write the video as .mp4 (H.264) or .gif, atomically; returns the path."""
        from .generate import write_video

        return write_video(self.frames, path, self.fps if fps is None else fps)


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def list_models(runs: str | os.PathLike = "runs") -> list[str]:
    """What from_pretrained accepts here: "pretrained:NAME" for every shipped checkpoint, then every run folder
    directly under `runs` (or one level deeper) that holds a checkpoint, newest first."""
    from .checkpoint import list_checkpoints
    from .pretrained import available

    out = [f"pretrained:{n}" for n in available()]
    runs = os.fspath(runs)
    found = []
    if os.path.isdir(runs):
        for d, subdirs, _ in os.walk(runs):
            if os.path.relpath(d, runs).count(os.sep) >= 1:
                subdirs[:] = []
            if d != runs and list_checkpoints(d):
                found.append((os.path.getmtime(list_checkpoints(d)[-1]), d))
    return out + [d for _, d in sorted(found, reverse=True)]


class ExpressionPipeline:
    """A loaded model (ours or a baseline) ready to animate photos. Build it with from_pretrained()."""

    #: cached photos for preview() (face crop + encoder features each)
    CACHE_SIZE = 4

    def __init__(self, family, meta: dict, source: str = ""):
        self.family = family
        self.meta = dict(meta)
        self.source = source
        self._cache: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    # ---- loading --------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, source: str | os.PathLike = "pretrained", device: str = "cpu") -> "ExpressionPipeline":
        """`source`: "pretrained" (the shipped weights) or "pretrained:NAME", a run folder (its newest
        checkpoint) or a ckpt-*.pt file; `device`: "cpu", "cuda" or "auto". Unknown source -> CkppError."""
        from .checkpoint import load_run
        from .training_loop import resolve_device

        family, meta = load_run(source, device=str(resolve_device(device)))
        return cls(family, meta, os.fspath(source))

    @property
    def emotions(self) -> list[str]:
        """The expressions this model knows (one weight each; several at once = a mix)."""
        return list(self.family.emotions)

    @property
    def name(self) -> str:
        return self.family.name

    @property
    def device(self):
        return self.family.device

    def __repr__(self) -> str:
        return (f"ExpressionPipeline({self.family.name}, emotions={self.emotions}, step {self.meta.get('step')}, "
                f"{self.family.cfg.image_size}px, from {self.meta.get('path')!r})")

    # ---- inputs -----------------------------------------------------------------------------------------
    def weights(self, weights) -> dict[str, float]:
        """{"happy": 0.7, "surprise": 0.3}, "happy", "happy=0.5" or a list of such -> {emotion: weight},
        checked as the CLI checks --emotion (unknown emotion, weight outside [0,1] -> UsageError)."""
        from .generate import parse_weights

        if isinstance(weights, dict):
            specs = [f"{k}={v}" for k, v in weights.items()]
        elif isinstance(weights, str):
            specs = [weights]
        else:
            specs = [str(s) for s in weights]
        return parse_weights(specs, self.emotions)

    @staticmethod
    def read(photo, where: str | None = None) -> np.ndarray:
        """A photo (path, bytes, PIL image, array) as RGB uint8, as `ckpp generate` reads files."""
        return as_photo(photo, where or (os.fspath(photo) if isinstance(photo, (str, os.PathLike)) else "photo"))

    # ---- the video ----------------------------------------------------------------------------------------
    def __call__(self, photo, weights, num_frames: int = 16, *, paste_back: bool = False, align: bool = True,
                 start: str = "auto", fps: float = 8.0, where: str | None = None, **kwargs) -> ExpressionOutput:
        """The video of `photo`'s face going from frame 0 to the weighted expression (frame 0 reconstructs the
        face; degrees a_t = t/(T-1)·weight). paste_back: whole photos instead of the face crop; align: level
        tilted eyes first; start: "auto" (warp parted lips shut first, the models' onset), "neutral", "as-is".
        Extra keywords go to models.generate.generate_video where it accepts them (e.g. size=, face=)."""
        from .generate import generate_video

        where = where or (os.fspath(photo) if isinstance(photo, (str, os.PathLike)) else "photo")
        image = self.read(photo, where)
        w = self.weights(weights)
        extra = self._extra(generate_video, kwargs)
        found: dict = {}
        frames = generate_video(self.family, image, w, num_frames, paste=paste_back, where=where, align=align,
                                start=start, report=found, **extra)
        return ExpressionOutput(frames=frames, face=FaceInfo.from_report(found, self.family.cfg.image_size),
                                weights=w, fps=float(fps))

    def animate(self, crops, weights, num_frames: int = 16, *, crops_hr=None, landmarks=None) -> np.ndarray:
        """Videos of faces already cropped (face_geometry.face_crop at the model's size and crop fraction), in one
        batch: (B,T,s,s,3) uint8, or (B,T,S,S,3) for motion-output models, which move `crops_hr` (the same faces
        at S x S, generate.full_res_crop). `landmarks`: the crops' 68 points in [0,1], for HP. The same step
        __call__ takes for one photo (generate.animate); `ckpp benchmark --photos` runs its batches here."""
        from .generate import animate

        return animate(self.family, crops, self.weights(weights), num_frames, crops_hr=crops_hr, landmarks=landmarks)

    @staticmethod
    def _extra(fn, kwargs: dict) -> dict:
        """Keywords `fn` accepts; a keyword it does not know is a UsageError (not silently ignored)."""
        extra = {k: v for k, v in kwargs.items() if v is not None}
        for k in extra:
            if not _accepts(fn, k):
                raise UsageError(f"{k}= is not supported by this ckpp's generator", path=f"{k}=",
                                 fix="leave it out (or update ckpp)")
        return extra

    # ---- the fast peak -------------------------------------------------------------------------------------
    def preview(self, photo, weights, *, paste_back: bool = False, align: bool = True, start: str = "auto",
                min_side: int = 256, where: str | None = None, face=None) -> np.ndarray:
        """The peak frame alone, (H,W,3) uint8, as fast as a slider moves: the first call for a photo finds
        the face and runs the encoders; later calls with other weights decode once. The paper's generator
        (ours) only decodes; baselines make a 2-frame video instead."""
        import cv2
        import torch

        where = where or (os.fspath(photo) if isinstance(photo, (str, os.PathLike)) else "photo")
        w = self.weights(weights)
        fam = self.family
        G = getattr(fam, "G", None)
        import ckpp_tools.face_geometry as fg

        if not hasattr(G, "encode") or (face is not None and not _accepts(fg.face_crop, "face")):
            # a baseline (no encode/decode split), or a face choice only generate_video knows: a 2-frame video
            return self(photo, w, 2, paste_back=paste_back, align=align, start=start, where=where, face=face).peak
        entry = self._prepared(photo, where, align, start, face, paste_back)
        if getattr(G, "output", "pixels") == "warp":
            return self._motion_peak(entry, w, paste_back)
        a = torch.zeros(1, 1, len(self.emotions))
        for e, v in w.items():
            a[0, 0, self.emotions.index(e)] = v
        with torch.no_grad(), fam.autocast():
            raw, _ = G.decode(G.combine(entry["base"], entry["res"], a.to(fam.device)))
            frame = torch.tanh(raw)      # the pixel decoder's output layer (Generator.forward applies the same)
        from .family import to_uint8

        peak = to_uint8(frame.float().clamp(-1, 1))
        if paste_back:
            from ckpp_tools.face_geometry import paste_back as paste

            return paste(entry["photo"], peak, entry["fc"].matrix)[0]
        peak = peak[0]
        if peak.shape[0] < min_side:
            peak = cv2.resize(peak, (min_side, min_side), interpolation=cv2.INTER_CUBIC)
        return peak

    def _motion_peak(self, entry: dict, w: dict, paste_back: bool) -> np.ndarray:
        """A motion-output model's peak from the cached encoder features: one decode of a = 0 and a = peak (the
        video is relative to frame 0's prediction), applied to the cached full-resolution crop (or the photo),
        exactly as generate_video makes the video's last frame."""
        import torch

        from . import generate as gen
        from . import motion_output as mo

        fam, G = self.family, self.family.G
        a = torch.zeros(1, 2, len(self.emotions))
        for e, v in w.items():
            a[0, 1, self.emotions.index(e)] = v
        with torch.no_grad(), fam.autocast():
            raw, _ = G.decode(G.combine(entry["base"], entry["res"], a.to(fam.device)))
        flow, mask, res = (t.float() for t in mo.split(raw, G.residual_mode))
        out = entry["motion_size"]
        if paste_back:
            m_hr = _resize_matrix(entry["fc"].matrix, fam.cfg.image_size, out)
            return gen._apply_motion(entry["photo"], m_hr, flow, mask, res, out, gen.PASTE_FEATHER,
                                     additive=G.additive)[-1]
        return gen._apply_motion(entry["crop_hr"], gen.IDENTITY, flow, mask, res, out, 0.0, additive=G.additive)[-1]

    def _prepared(self, photo, where, align, start, face, paste_back) -> dict:
        """Cached per photo and options: the (neutralised) photo, its FaceCrop and the encoder features."""
        import cv2
        import torch

        from ckpp_tools import face_geometry as fg
        from ckpp_tools.neutral import parse_starts, start_for

        image = self.read(photo, where)
        key = (hashlib.sha1(image.tobytes()).hexdigest(), image.shape, align, start, face, paste_back)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        cfg, fam = self.family.cfg, self.family
        parse_starts([start])
        if paste_back and max(image.shape[:2]) > 1280:      # what generate_video pastes into
            k = 1280 / max(image.shape[:2])
            image = cv2.resize(image, (round(image.shape[1] * k), round(image.shape[0] * k)), interpolation=cv2.INTER_AREA)
        kw = {"face": face} if face is not None else {}
        fc = fg.face_crop(image, cfg.image_size, cfg.crop_fraction, align=align, where=where, **kw)
        motion = getattr(fam.G, "output", "pixels") == "warp"
        if start_for(fc.landmarks, start) == "neutral":
            warped = None
            if motion:                    # as generate_video: the photo's own pixels are shown, warped bicubic
                from ckpp_tools.neutral import neutral_photo

                warped = neutral_photo(image, fc.landmarks, interpolation=cv2.INTER_CUBIC)
            image, fc, _ = fg.neutral_start(image, fc, cfg.image_size, warped)
        from .generate import input_tensor

        first = input_tensor([fc.crop], fam.device)   # as the video makes it (memory layout too): the same peak
        fam.train_mode(False)
        with torch.no_grad(), fam.autocast():
            base, res = fam.G.encode(first)
        entry = {"photo": image, "fc": fc, "base": base, "res": res}
        if motion:                        # the face at its own size in the photo, as generate_video crops it
            from .generate import full_res_crop

            entry["motion_size"] = fg.output_size(fc.matrix, cfg.image_size, None)
            entry["crop_hr"] = None if paste_back else full_res_crop(image, fc.matrix, cfg.image_size,
                                                                     entry["motion_size"])
        with self._lock:
            self._cache[key] = entry
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return entry


def _resize_matrix(matrix, size: int, new_size: int):
    from ckpp_tools.face_geometry import resize_matrix

    return resize_matrix(matrix, size, new_size)
