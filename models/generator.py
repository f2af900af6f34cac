"""The paper's frame generator f(I, a) = d(e0(I) + Σ_i a_i e_i(I)) (paper eq. 1, 2, 7; DESIGN §7).

Base encoder e0 and one residual encoder e_i per emotion, each `levels` stride-2 Conv-BN-LeakyReLU layers;
their features are summed layer by layer, F_l = e0_l(I) + Σ_i a_i e_i,l(I), and F is the U-Net skip
hierarchy of a mirrored decoder (ConvTranspose-BN-ReLU, tanh out). A 68-landmark soft-argmax head sits on
the input of the decoder's last layer (its second-to-last layer's output plus the skip it is joined with).

The encoders do not depend on a, so one call takes several degree vectors per image, a: (B,K,n), encodes
once and decodes B·K frames: the K=3 passes of R_t (a, a-Δa, a+Δa) and a whole video at generation time
cost one encoder pass.

output="warp" (not in the paper; models/motion_output.py says why) gives the decoder's last layer 6 channels,
flow + mask + residual, and the frame is the input warped by the flow and blended with the residual; the
encoders, the degree mixing and the landmark head are the same. output="pixels" is the paper's decoder.
"""
from __future__ import annotations

import torch
from torch import nn

from . import motion_output as mo
from .config import RESIDUALS
from .layers import Encoder, SoftArgmax2d, Up, init_weights

OUTPUTS = ("pixels", "warp")


class Generator(nn.Module):
    def __init__(self, widths: list[int], n_emotions: int, landmark_head: bool = True, output: str = "pixels",
                 residual: str = "colour"):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output {output!r}: use one of {OUTPUTS}")
        if residual not in RESIDUALS:
            raise ValueError(f"residual {residual!r}: use one of {RESIDUALS}")
        self.residual_mode = residual       # output="warp": how the residual meets the moved face (motion_output)
        self.widths = list(widths)
        self.n_emotions = n_emotions
        self.output = output
        L = len(widths)
        self.e0 = Encoder(widths)
        self.residual = nn.ModuleList(Encoder(widths) for _ in range(n_emotions))
        # ups[j] produces level L-1-j's resolution; input = previous up output (+ skip F_{L-j}, except innermost)
        ups = []
        for j in range(L):
            lvl = L - 1 - j                     # 0-based encoder level whose output this up consumes
            cin = widths[lvl] if j == 0 else 2 * widths[lvl]
            last = lvl == 0
            cout = (3 if output == "pixels" else mo.CHANNELS) if last else widths[lvl - 1]
            ups.append(Up(cin, cout, norm=not last, act=not last))
        self.ups = nn.ModuleList(ups)
        self.head = SoftArgmax2d(2 * widths[0]) if landmark_head else None
        init_weights(self)
        if output == "warp":
            mo.init_last_layer(self.ups[-1].conv)       # starts as the identity: frame = input

    @property
    def additive(self) -> bool:
        """Whether the residual is added to the moved face (residual="delta") rather than blended in."""
        return self.residual_mode == "delta"

    def encode(self, image: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """e0(I) per level, and e_i(I) per emotion per level. At inference, residual encoders whose degree
        is zero everywhere may be skipped by the caller via `active`; training always runs them all."""
        return self.e0(image), [e(image) for e in self.residual]

    @staticmethod
    def combine(base: list[torch.Tensor], res: list[list[torch.Tensor] | None], a: torch.Tensor) -> list[torch.Tensor]:
        """F_l = e0_l + Σ_i a_i e_i,l for every level; a (B,K,n) -> features (B·K, C, H, W)."""
        b, k, n = a.shape
        out = []
        for lvl, f0 in enumerate(base):
            f = f0.unsqueeze(1).expand(b, k, *f0.shape[1:])
            for i in range(n):
                if res[i] is None:
                    continue
                f = f + a[:, :, i].to(f0.dtype).view(b, k, 1, 1, 1) * res[i][lvl].unsqueeze(1)
            f = f.reshape(b * k, *f0.shape[1:])
            if f0.is_contiguous(memory_format=torch.channels_last) and not f0.is_contiguous():
                f = f.contiguous(memory_format=torch.channels_last)
            out.append(f)
        return out

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features -> (the last layer's raw output (N,3|6,S,S), landmarks (N,68,2) or None)."""
        x = feats[-1]
        lmk = None
        L = len(feats)
        for j, up in enumerate(self.ups):
            lvl = L - 1 - j
            if j > 0:
                x = torch.cat([x, feats[lvl]], dim=1)
            if lvl == 0 and self.head is not None:
                lmk = self.head(x)
            x = up(x)
        return x, lmk

    def forward(self, image: torch.Tensor, a: torch.Tensor, with_motion: bool = False):
        """image (B,3,S,S) in [-1,1]; a (B,n) or (B,K,n) degrees.
        -> frames (B,[K],3,S,S) in [-1,1], landmarks (B,[K],68,2) in [0,1] (None without head);
        with_motion=True adds a third item: (flow, mask, residual) each (B,[K],c,S,S) for output="warp", else None."""
        squeeze = a.dim() == 2
        if squeeze:
            a = a.unsqueeze(1)
        b, k, n = a.shape
        if n != self.n_emotions:
            raise ValueError(f"degree vector has {n} entries, the generator has {self.n_emotions} emotions")
        base = self.e0(image)
        if torch.is_grad_enabled():
            res = [e(image) for e in self.residual]     # all of them: DDP expects every parameter used
        else:
            res = [e(image) if bool((a[:, :, i] != 0).any()) else None for i, e in enumerate(self.residual)]
        raw, lmk = self.decode(self.combine(base, res, a))
        motion = None
        if self.output == "pixels":
            frames = torch.tanh(raw)
        else:
            motion = mo.split(raw, self.residual_mode)
            src = image.unsqueeze(1).expand(b, k, *image.shape[1:]).reshape(b * k, *image.shape[1:])
            frames = mo.compose(src, *motion, additive=self.additive)
        shape = lambda t: None if t is None else (t.view(b, k, *t.shape[1:])[:, 0] if squeeze  # noqa: E731
                                                  else t.view(b, k, *t.shape[1:]))
        frames, lmk = shape(frames), shape(lmk)
        if not with_motion:
            return frames, lmk
        return frames, lmk, None if motion is None else tuple(shape(t) for t in motion)
