"""What every trainable model ("family") gives the shared training loop, checkpoints, `ckpp generate` and
`ckpp benchmark`. One subclass per family: models.ours.OursFamily, models.baselines.*.

The loop owns the process-level machinery (device, DDP, AMP, channels_last, compile, data, logging,
checkpoints); a family owns its networks and what one optimisation step does. The loop hands its machinery
over once, through `attach(runtime)`, and the family uses it via small helpers, so its train_step reads
like single-GPU fp32 code:

    class MyFamily(ModelFamily):
        name = "mine"; clip_frames = None            # None: PAIR batches; 10: SEQUENCE batches
        def __init__(self, cfg, emotions):
            super().__init__(cfg, emotions)
            self.G = Generator(...); self.D = Disc(...)
        def modules(self):              return {"G": self.G, "D": self.D}
        def configure_optimizers(self): return {"G": adam(self.G), "D": adam(self.D)}
        def train_step(self, batch, step):
            G = self.net("G")                        # DDP-wrapped when distributed, else self.G
            with self.autocast():                    # bf16 on CUDA when enabled, else a no-op
                fake = G(batch["input"])
                loss = l1(fake, batch["target"])
            self.optimize(loss, "G")                 # zero_grad + (scaled) backward + step
            return {"loss": loss.item()}

Batches reach train_step on the device, images float in [-1, 1] (channels_last when enabled), see
models.data for the keys:
    PAIR     (clip_frames None): input (B,3,S,S), target (B,3,S,S), degree (B,), emotion (B,) long,
             landmarks (B,68,2) in [0,1] of the crop (target frame), input_landmarks (B,68,2),
             mask (B,1,S,S) {0,1} target mouth mask
    SEQUENCE (clip_frames K):   frames (B,K,3,S,S), landmarks (B,K,68,2), masks (B,K,1,S,S),
             degrees (B,K), emotion (B,), input = frames[:,0]
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn


@dataclass
class Runtime:
    """Process-level machinery the training loop hands to a family (defaults: plain CPU fp32, no DDP)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp_dtype: torch.dtype | None = None          # torch.bfloat16 / torch.float16 / None
    scaler: "torch.amp.GradScaler | None" = None  # fp16 only; the loop calls scaler.update() after train_step
    channels_last: bool = False
    compile: bool = False
    world_size: int = 1
    rank: int = 0
    wrap: Callable[[nn.Module], nn.Module] = field(default=lambda m: m)  # DDP wrapper when distributed

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)


class ModelFamily:
    """Base class of a trainable model family. Subclasses set `name`, `clip_frames`, `native_frames` and
    implement the methods marked "subclass"."""

    #: registry name: "ours" | "convlstm" | "hp"
    name: str = ""
    #: None -> PAIR sampling (onset frame + one random frame and its degree); K -> SEQUENCE of K frames
    clip_frames: int | None = None
    #: None -> generate() makes any number of frames natively; K -> it makes K and resamples to T
    native_frames: int | None = None
    #: whether one model may hold several emotions (ours: yes; baselines: one model per expression)
    multi_emotion: bool = True

    def __init__(self, cfg, emotions: list[str]):
        self.cfg = cfg
        self.emotions = list(emotions)
        self.runtime = Runtime()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self._wrapped: dict[str, nn.Module] = {}

    # ---- subclass ---------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        """Every network whose weights are checkpointed, by a stable name."""
        raise NotImplementedError

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimisers by name (checkpointed). Called by attach() after the modules are on their device."""
        raise NotImplementedError

    def train_step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """One optimisation step (all its forward/backward/optimizer steps); returns scalar metrics
        (each loss term by name) for metrics.jsonl."""
        raise NotImplementedError

    @torch.no_grad()
    def sample_images(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """A (H,W,3) uint8 picture for the run folder: per row, input | generated a=0…1 | ground truth."""
        raise NotImplementedError

    @torch.no_grad()
    def generate(self, first: torch.Tensor, weights: torch.Tensor, n_frames: int) -> torch.Tensor:
        """first (B,3,S,S) in [-1,1] (onset/neutral face, S = cfg.image_size), weights (B, n_emotions) in
        [0,1] -> video (B,T,3,S,S) in [-1,1]; frame 0 reconstructs `first`, frame T-1 is the peak scaled by
        `weights`. Families with native_frames make that many and resample to T (see resample_frames)."""
        raise NotImplementedError

    @torch.no_grad()
    def predict_landmarks(self, frames: torch.Tensor) -> torch.Tensor | None:
        """Optional: (N,3,S,S) -> (N,68,2) in [0,1] of the frame, from the model's own head; None if none."""
        return None

    # ---- provided -----------------------------------------------------------------------------
    def attach(self, runtime: Runtime | None = None, *, train: bool = True) -> "ModelFamily":
        """Move modules to the runtime's device/memory format, wrap them for DDP/compile and build the
        optimisers (train=True). The loop calls this once; load_run() calls it with train=False."""
        self.runtime = runtime or Runtime()
        fmt = torch.channels_last if self.runtime.channels_last else torch.preserve_format
        for m in self.modules().values():
            m.to(self.runtime.device, memory_format=fmt)
        self._wrapped = {}
        if train:
            self.optimizers = self.configure_optimizers()
            for name, m in self.modules().items():
                if any(p.requires_grad for p in m.parameters()):
                    w = self.runtime.wrap(m)
                    if self.runtime.compile:
                        w = torch.compile(w)
                    self._wrapped[name] = w
        self.train_mode(train)
        return self

    def net(self, name: str) -> nn.Module:
        """The module to call in train_step: DDP-wrapped / compiled when the runtime says so. Call each
        wrapped module's forward once per backward (DDP); for frozen use (e.g. D inside the G step) call
        the raw module from modules() instead."""
        w = self._wrapped.get(name)           # (no `or`: a compiled module's truth value calls len())
        return w if w is not None else self.modules()[name]

    def autocast(self):
        """Context for forward passes: bf16/fp16 autocast when enabled, else a no-op."""
        return self.runtime.autocast()

    def optimize(self, loss: torch.Tensor, *names: str) -> None:
        """zero_grad, backward (through the fp16 scaler when there is one) and step the named optimisers."""
        opts = [self.optimizers[n] for n in names]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        scaler = self.runtime.scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            for opt in opts:
                scaler.step(opt)
        else:
            loss.backward()
            for opt in opts:
                opt.step()

    def train_mode(self, flag: bool = True) -> None:
        for m in self.modules().values():
            m.train(flag)

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """Image tensors to the runtime's device and memory format."""
        x = x.to(self.runtime.device, non_blocking=True)
        if self.runtime.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def emotion_index(self, name: str) -> int:
        return self.emotions.index(name)

    def num_parameters(self) -> dict[str, int]:
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.modules().items()}


# ---- helpers shared by families ------------------------------------------------------------------

def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def resample_frames(video: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B,K,...) -> (B,T,...) by nearest frame on a uniform time axis, first and last kept: how a family
    with a fixed native length answers a request for T frames (no invented in-between frames)."""
    k = video.shape[1]
    if k == n_frames:
        return video
    idx = torch.round(torch.linspace(0, k - 1, n_frames, device=video.device)).long()
    return video.index_select(1, idx)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(...,3,H,W) in [-1,1] -> (...,H,W,3) uint8."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    return x.movedim(-3, -1).numpy()


def tile(rows: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    """A grid picture from rows of equal-size (H,W,3) uint8 images, white gaps."""
    h, w = rows[0][0].shape[:2]
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = img
    return out
