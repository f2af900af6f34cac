"""Hierarchical Prediction baseline (HP, Villegas et al. 2017) as the paper adapted it (§4): predict the
face's structure (68 landmarks) over the 10 steps with an LSTM, then render each frame from the first
frame by visual analogy, with a U-Net in place of HP's visual-structure network.

    p_1 (first frame's landmarks) --LSTM--> p_2..p_10                  (loss: landmark L2)
    g(p): Gaussian heatmaps, one channel per facial part
    F_l = f_img,l(x_1) + T_l( f_pose,l(g(p_t)) - f_pose,l(g(p_1)), f_img,l(x_1) )   at every U-Net level l
    frame_t = U-Net decoder(F_1..F_L)                                  (loss: L1 + global GAN D_g)

As in Villegas et al., the image generator learns from the TRUE landmarks of each training frame (teacher
forcing) while the LSTM learns the landmark trajectories on its own; they meet only at generation time,
where the LSTM's prediction drives the generator. That split is one reason HP "jumps" (docs/baselines.md).

The first frame's landmarks at generation time come from `generate(..., landmarks=)` when the caller has
them (a dataset clip), else from dlib run on the frame itself (see `first_landmarks`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ckpp_tools.crop import CENTER_SHIFT_UP, HEAD_SCALE

from .. import losses
from ..family import to_uint8
from ..layers import Encoder, init_weights
from .common import HEATMAP_GROUPS, LandmarkLSTM, SequenceFamily, UNetDecoder, expand_time, landmark_heatmaps

#: Gaussian width of the landmark heatmaps, as a fraction of the image side (5 px at 256²)
HEATMAP_SIGMA = 0.02
#: dlib finds faces from ~80 px: smaller crops are upsampled to at least this side before detection
DETECT_SIDE = 256


class HPGenerator(nn.Module):
    def __init__(self, widths: list[int], hidden: int, n_frames: int, image_size: int,
                 n_groups: int = len(HEATMAP_GROUPS)):
        super().__init__()
        self.n_frames = n_frames
        self.lstm = LandmarkLSTM(hidden)
        self.img_enc = Encoder(widths)
        self.pose_enc = Encoder(widths, cin=n_groups)
        # T_l: 3×3 where the map has room for it, 1×1 on the small innermost maps (a 3×3 kernel on a 1×1 map
        # only ever uses its centre: 9× the weights for nothing; 25 M vs 12.5 M parameters at 256²)
        sides = [image_size >> (l + 1) for l in range(len(widths))]
        self.analogy = nn.ModuleList(nn.Conv2d(2 * c, c, 3 if s >= 8 else 1, padding=1 if s >= 8 else 0)
                                     for c, s in zip(widths, sides))
        self.decoder = UNetDecoder(widths)
        for m in (self.img_enc, self.pose_enc, self.analogy, self.decoder):
            init_weights(m)

    def render(self, first: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """first (B,3,S,S), landmarks (B,T,68,2) in [0,1] with landmarks[:,0] the first frame's
        -> frames (B,T,3,S,S); all T frames in one batched pass."""
        b, n = landmarks.shape[:2]
        size = first.shape[-1]
        maps = landmark_heatmaps(landmarks.flatten(0, 1), size, HEATMAP_SIGMA).to(first.dtype)
        if first.is_contiguous(memory_format=torch.channels_last) and not first.is_contiguous():
            maps = maps.contiguous(memory_format=torch.channels_last)
        img = self.img_enc(first)
        pose = self.pose_enc(maps)
        feats = []
        for f_img, f_pose, t in zip(img, pose, self.analogy):
            f_pose = f_pose.view(b, n, *f_pose.shape[1:])
            diff = (f_pose - f_pose[:, :1]).flatten(0, 1)          # f_pose(g(p_t)) - f_pose(g(p_1))
            f_img = expand_time(f_img, n)
            feats.append(f_img + t(torch.cat([diff, f_img], dim=1)))
        frames = self.decoder(feats)
        return frames.view(b, n, *frames.shape[1:])

    def forward(self, first: torch.Tensor, first_landmarks: torch.Tensor, true_landmarks: torch.Tensor | None = None):
        """-> (frames (B,T,3,S,S), predicted landmarks (B,T,68,2)). Frames are rendered from
        `true_landmarks` when given (training: teacher forcing), else from the LSTM's prediction."""
        n = self.n_frames if true_landmarks is None else true_landmarks.shape[1]
        pred = self.lstm(first_landmarks, n)
        frames = self.render(first, pred if true_landmarks is None else true_landmarks)
        return frames, pred


class HPFamily(SequenceFamily):
    name = "hp"

    def __init__(self, cfg, emotions):
        super().__init__(cfg, emotions)
        self.G = HPGenerator(cfg.widths(), cfg.lstm_hidden, self.n_native, cfg.image_size)

    def forward_train(self, G, batch):
        lm = batch["landmarks"]
        frames, pred = G(batch["input"], lm[:, 0], lm)
        # landmark L2 on the predicted steps (step 1 is the given pose itself); HP's structure loss, so it is
        # weighted by loss_weights["lmk"] whatever the main model's landmark-head switches say
        lmk = losses.landmark(pred[:, 1:].flatten(0, 1), lm[:, 1:].flatten(0, 1))
        return frames, {"lmk": (float(self.cfg.loss_weights.get("lmk", 0.0)), lmk)}

    def native(self, first, landmarks=None, **kw):
        if landmarks is None:
            landmarks = first_landmarks(first, getattr(self.cfg, "crop_fraction", 1.0))
        frames, _ = self.G(first, landmarks.to(first.device, torch.float32))
        return frames

    @torch.no_grad()
    def native_with_landmarks(self, first, landmarks=None):
        """(frames (B,10,3,S,S), the LSTM's landmarks (B,10,68,2) in [0,1]) — for inspecting the structure."""
        if landmarks is None:
            landmarks = first_landmarks(first, getattr(self.cfg, "crop_fraction", 1.0))
        with self.autocast():
            frames, pred = self.G(first, landmarks.to(first.device, torch.float32))
        return frames.float().clamp(-1, 1), pred.float()

    def sample_kwargs(self, batch, n):
        return {"landmarks": batch["landmarks"][:n, 0]}


def prior_box(side: int, crop_fraction: float = 1.0) -> tuple[float, float, float, float]:
    """Where the landmarks lie in a ckpp face crop (ckpp_tools.crop: side = HEAD_SCALE × landmark extent,
    centre shifted up), after the training-time centre crop by `crop_fraction`: a detector-like box."""
    ext = 1.0 / HEAD_SCALE
    cx, cy = 0.5, 0.5 + CENTER_SHIFT_UP * ext
    box = np.array([cx - ext / 2, cy - ext / 2, cx + ext / 2, cy + ext / 2])
    box = (box - (1 - crop_fraction) / 2) / crop_fraction
    return tuple(float(v) for v in box * side)


def first_landmarks(first: torch.Tensor, crop_fraction: float = 1.0) -> torch.Tensor:
    """68 landmarks (B,68,2) in [0,1] of each face crop, by dlib (the toolkit's landmarker, the same one that
    labelled the training data). Small crops are upsampled first; when dlib's detector misses the face
    (tiny or odd crops), its shape predictor starts from where ckpp's crop puts the face (`prior_box`)."""
    from ckpp_tools.landmarks.dlib_backend import DlibLandmarker
    import cv2

    lmk = DlibLandmarker.shared()
    images = to_uint8(first)
    out = []
    for img in images:
        s = img.shape[0]
        k = max(1, math.ceil(DETECT_SIDE / s))
        big = cv2.resize(img, (s * k, s * k), interpolation=cv2.INTER_CUBIC) if k > 1 else img
        boxes = lmk.detect(big, upsample=0, max_side=None)
        box = boxes[0] if boxes else prior_box(s * k, crop_fraction)
        p = lmk.predict(big, box).astype(np.float32)
        out.append((p + 0.5) / (s * k))                 # pixel centres at (i+0.5)/side, as models.data
    return torch.from_numpy(np.stack(out)).to(first.device)
