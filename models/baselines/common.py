"""Pieces both recurrent baselines share: the recurrent cells, landmark heatmaps, and the mapping from the
common generation interface (first frame + emotion weight -> T frames) onto their fixed 10 native frames.

The baselines of the paper (§4) cannot take a degree a: they roll an LSTM over a fixed number of steps
(10 frames sampled uniformly from onset to peak). `resample_time` is how they still answer any
(weight, n_frames) request alike with the main model — see docs/baselines.md.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from ckpp_tools import schema
from ckpp_tools.errors import UsageError

from .. import losses
from ..discriminators import PatchDiscriminator
from ..family import ModelFamily, set_requires_grad, tile, to_uint8
from ..layers import Up

#: frames each baseline rolls over, as in the paper: 10 sampled uniformly from onset (a=0) to peak (a=1)
NATIVE_FRAMES = 10

#: landmark groups rendered as one heatmap channel each (iBUG-68 order); the mouth is split into its outer
#: and inner lips because they move differently (open mouth vs smile)
HEATMAP_GROUPS: tuple[tuple[int, ...], ...] = (
    schema.JAW, schema.RIGHT_BROW, schema.LEFT_BROW, schema.NOSE, schema.RIGHT_EYE, schema.LEFT_EYE,
    schema.OUTER_LIP, schema.INNER_LIP,
)


class ConvLSTMCell(nn.Module):
    """Shi et al. (2015): an LSTM whose gates are convolutions, so the state keeps its spatial layout."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)
        with torch.no_grad():  # forget-gate bias 1: the usual start that keeps the memory early in training
            self.gates.bias.zero_()
            self.gates.bias[hidden_channels : 2 * hidden_channels].fill_(1.0)

    def init_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = x.shape
        z = x.new_zeros(b, self.hidden_channels, h, w)
        return z, z.clone()

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class LandmarkLSTM(nn.Module):
    """Villegas et al.'s (2017) structure predictor: observe the first pose, then unroll without input.

    Landmarks are (B,68,2) in [0,1] (crop-normalised). The prediction is the first pose plus a learned
    displacement; the displacement head starts at zero, so an untrained model predicts a still face.
    """

    def __init__(self, hidden: int = 256, n_points: int = 68):
        super().__init__()
        self.n_points = n_points
        self.embed = nn.Sequential(nn.Linear(2 * n_points, hidden), nn.ReLU(inplace=True))
        self.cell = nn.LSTMCell(hidden, hidden)
        self.head = nn.Linear(hidden, 2 * n_points)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, first: torch.Tensor, n_frames: int = NATIVE_FRAMES) -> torch.Tensor:
        """(B,68,2) first-frame landmarks -> (B,n_frames,68,2); frame 0 is the given pose itself."""
        b = first.shape[0]
        p1 = first.reshape(b, -1).float()
        h, c = self.cell(self.embed(p1 - 0.5))
        blank = p1.new_zeros(b, self.cell.input_size)
        out = [p1]
        for _ in range(1, n_frames):
            out.append(p1 + self.head(h))
            h, c = self.cell(blank, (h, c))
        return torch.stack(out, dim=1).reshape(b, n_frames, self.n_points, 2)


def landmark_heatmaps(points: torch.Tensor, size: int, sigma: float = 0.02,
                      groups: tuple[tuple[int, ...], ...] = HEATMAP_GROUPS) -> torch.Tensor:
    """Gaussian heatmaps (N,G,size,size) of landmark groups from points (N,68,2) in [0,1] (x, y).

    Each Gaussian is separable, so a group's map is one (size×P)@(P×size) matrix product: memory is the
    output only, never N×68×size×size (which would be 2.8 GB for a 16×10-frame batch at 256²).
    `sigma` is a fraction of the image side (5 px at 256²), floored at one pixel.
    """
    n = points.shape[0]
    p = points.float()
    coords = (torch.arange(size, device=p.device, dtype=torch.float32) + 0.5) / size
    s = max(sigma, 1.0 / size)
    gx = torch.exp(-((coords.view(1, 1, -1) - p[..., 0:1]) ** 2) / (2 * s * s))  # (N,68,size)
    gy = torch.exp(-((coords.view(1, 1, -1) - p[..., 1:2]) ** 2) / (2 * s * s))
    member = torch.zeros(len(groups), p.shape[1], device=p.device)
    for g, idx in enumerate(groups):
        member[g, list(idx)] = 1.0
    gy_g = gy.unsqueeze(1) * member.view(1, len(groups), -1, 1)  # (N,G,68,size)
    maps = gy_g.transpose(-1, -2) @ gx.unsqueeze(1)  # (N,G,size_y,68) @ (N,1,68,size_x)
    return maps.clamp_(max=1.0).reshape(n, len(groups), size, size)


def resample_times(weights: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Native-time positions (B,n_frames) in [0, 1] that a request (weights, n_frames) asks for.

    Mirrors the main model, whose frames are a = w·0 … w·1: a baseline's native frame k sits at degree
    k/9, so weight w asks for the first w of the onset→peak trajectory (w = 0: the first frame repeated;
    w = 1: the whole clip). Same ramp as the main model's, torch.linspace(0, 1, n_frames).
    """
    w = weights.float().clamp(0.0, 1.0).reshape(-1, 1)
    steps = torch.linspace(0.0, 1.0, n_frames, device=w.device).view(1, -1)
    return w * steps


def resample_time(video: torch.Tensor, times: torch.Tensor, mode: str = "linear") -> torch.Tensor:
    """Sample a native video (B,N,...) at times (B,T) in [0,1] -> (B,T,...).

    'linear' cross-fades the two nearest native frames (smooth, but a blend is not a real expression
    frame); 'nearest' repeats native frames. Both return the native frames exactly on the native grid.
    """
    b, n = video.shape[:2]
    pos = times.to(video.device).float().clamp(0, 1) * (n - 1)
    if mode == "nearest":
        idx = (pos + 0.5).floor().long().clamp(0, n - 1)
        return torch.stack([video[i, idx[i]] for i in range(b)])
    if mode != "linear":
        raise ValueError(f"unknown resample mode {mode!r} (use 'linear' or 'nearest')")
    i0 = pos.floor().long().clamp(0, n - 1)
    i1 = (i0 + 1).clamp(max=n - 1)
    frac = (pos - i0.float()).view(b, -1, *([1] * (video.dim() - 2))).to(video.dtype)
    v0 = torch.stack([video[i, i0[i]] for i in range(b)])
    v1 = torch.stack([video[i, i1[i]] for i in range(b)])
    return v0 + frac * (v1 - v0)


class UNetDecoder(nn.Module):
    """The decoder half of the main model's U-Net (same Up layers, same skip wiring, tanh out), for
    encoders built with models.layers.Encoder(widths): feats[l] is encoder level l's output."""

    def __init__(self, widths: list[int]):
        super().__init__()
        L = len(widths)
        ups = []
        for j in range(L):
            lvl = L - 1 - j
            cin = widths[lvl] if j == 0 else 2 * widths[lvl]
            last = lvl == 0
            ups.append(Up(cin, 3 if last else widths[lvl - 1], norm=not last, act=not last))
        self.ups = nn.ModuleList(ups)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        L = len(feats)
        for j, up in enumerate(self.ups):
            if j > 0:
                x = torch.cat([x, feats[L - 1 - j]], dim=1)
            x = up(x)
        return torch.tanh(x)


def expand_time(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B,...) -> (B·n,...): the first frame's features repeated for every time step (no copy until used)."""
    return x.unsqueeze(1).expand(x.shape[0], n, *x.shape[1:]).reshape(x.shape[0] * n, *x.shape[1:])


class SequenceFamily(ModelFamily):
    """What the two baselines share: one emotion per model, SEQUENCE batches of 10 frames, a generator "G"
    that makes all 10 from the first, the global discriminator D_g on every frame, L1 on every frame, and
    generation through the common interface (resampled from the native 10, see resample_times).

    A subclass sets `name`, builds `self.G` and implements `forward_train` (the training forward pass, may
    add its own loss terms) and `native` (the 10 frames from a first frame at generation time)."""

    clip_frames = NATIVE_FRAMES
    native_frames = NATIVE_FRAMES
    multi_emotion = False
    #: how (weights, n_frames) requests are answered from the native frames: "nearest" repeats real model
    #: frames; "linear" would cross-fade neighbours and hide the very jumps the benchmark measures
    resample_mode = "nearest"

    def __init__(self, cfg, emotions):
        super().__init__(cfg, emotions)
        if len(self.emotions) != 1:
            raise UsageError(
                f"the {self.name} baseline is trained one model per expression (paper §4), got {len(self.emotions)} "
                f"emotions: {', '.join(self.emotions)}", path="--emotion",
                fix="train one run per emotion, e.g. " + "; ".join(
                    f"ckpp train --model {self.name} --emotion {e}" for e in self.emotions))
        self.n_native = int(getattr(cfg, "clip_frames", NATIVE_FRAMES) or NATIVE_FRAMES)
        self.clip_frames = self.native_frames = self.n_native
        self.D_g = PatchDiscriminator(cfg.d_width) if cfg.weight("gan_g") > 0 else None

    # ---- subclass ------------------------------------------------------------------------------
    def forward_train(self, G: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        """-> (video (B,N,3,S,S), {term: (weight, loss)}) — L1 and the GAN term are added by train_step."""
        raise NotImplementedError

    def native(self, first: torch.Tensor, **kw) -> torch.Tensor:
        """first (B,3,S,S) -> the model's N native frames (B,N,3,S,S), frame 0 reconstructing `first`."""
        raise NotImplementedError

    # ---- shared --------------------------------------------------------------------------------
    def modules(self):
        mods = {"G": self.G}
        if self.D_g is not None:
            mods["D_g"] = self.D_g
        return mods

    def configure_optimizers(self):
        c = self.cfg
        opts = {"G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)}
        if self.D_g is not None:
            opts["D"] = torch.optim.Adam(self.D_g.parameters(), lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)
        return opts

    def train_step(self, batch, step):
        cfg = self.cfg
        real = batch["frames"]
        G = self.net("G")
        with self.autocast():
            video, terms = self.forward_train(G, batch)
        fake = video.flatten(0, 1)
        out = {}
        if self.D_g is not None:  # D step: every real frame vs every generated frame (detached), one batch
            with self.autocast():
                logits = self.net("D_g")(torch.cat([real.flatten(0, 1), fake.detach()], 0))
                d_real, d_fake = logits.chunk(2, 0)
                d = losses.d_loss(d_real, d_fake, cfg.gan_loss)
            self.optimize(d, "D")
            out["d_g"] = d.detach()
            set_requires_grad(self.D_g, False)
        try:
            with self.autocast():
                terms["rec"] = (cfg.weight("rec"), losses.reconstruction(video, real))
                if self.D_g is not None:
                    terms["g_g"] = (cfg.weight("gan_g"), losses.g_loss(self.D_g(fake), cfg.gan_loss))
                total = sum(w * v for w, v in terms.values())
            self.optimize(total, "G")
        finally:
            if self.D_g is not None:
                set_requires_grad(self.D_g, True)
        out.update({k: v.detach() for k, (w, v) in terms.items()})
        out["g_total"] = total.detach()
        return out

    @torch.no_grad()
    def generate(self, first, weights, n_frames, **kw):
        """The common interface: native N frames, then the first `w` of the onset→peak trajectory at
        n_frames evenly spaced times (w = this model's one emotion weight; see resample_times)."""
        weights = weights.to(first.device, torch.float32).reshape(first.shape[0], -1)
        if weights.shape[1] != 1:
            raise ValueError(f"{self.name} holds one emotion ({self.emotions[0]}), got {weights.shape[1]} weights")
        with self.autocast():
            video = self.native(first, **kw)
        video = video.float().clamp(-1, 1)
        return resample_time(video, resample_times(weights[:, 0], n_frames), self.resample_mode)

    @torch.no_grad()
    def sample_images(self, batch) -> np.ndarray:
        """Per sample two rows: the native frames generated from frame 0, and the real frames."""
        was = [m.training for m in self.modules().values()]
        self.train_mode(False)
        try:
            n = min(3, batch["frames"].shape[0])
            video = self.generate(batch["input"][:n], torch.ones(n, 1, device=batch["input"].device), self.n_native,
                                  **self.sample_kwargs(batch, n))
            rows = []
            for i in range(n):
                rows.append([to_uint8(f) for f in video[i]])
                rows.append([to_uint8(f) for f in batch["frames"][i]])
            return tile(rows)
        finally:
            for m, flag in zip(self.modules().values(), was):
                m.train(flag)

    def sample_kwargs(self, batch: dict, n: int) -> dict:
        """Extra generate() arguments a sample grid can take from the batch (HP: the first landmarks)."""
        return {}
