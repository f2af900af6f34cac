"""The paper's model as a ModelFamily: generator f(I, a), D_g, D_l and the losses of §3.3, one train step
= one D update (D_g and D_l together) + one G update on a PAIR batch."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import losses
from . import motion_output as mo
from .discriminators import PatchDiscriminator
from .family import ModelFamily, set_requires_grad, tile, to_uint8
from .generator import Generator


class OursFamily(ModelFamily):
    name = "ours"
    clip_frames = None
    native_frames = None
    multi_emotion = True

    def __init__(self, cfg, emotions):
        super().__init__(cfg, emotions)
        # no head when L_k is off: an unused head would also break DDP (parameters without gradients)
        self.G = Generator(cfg.widths(), len(self.emotions), landmark_head=cfg.weight("lmk") > 0,
                           output=getattr(cfg, "output", "pixels"), residual=getattr(cfg, "residual", "colour"))
        self.D_g = PatchDiscriminator(cfg.d_width) if cfg.weight("gan_g") > 0 else None
        self.D_l = PatchDiscriminator(cfg.d_width) if cfg.weight("gan_l") > 0 else None

    def modules(self):
        mods = {"G": self.G}
        if self.D_g is not None:
            mods["D_g"] = self.D_g
        if self.D_l is not None:
            mods["D_l"] = self.D_l
        return mods

    def configure_optimizers(self):
        c = self.cfg
        opts = {"G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)}
        d_params = [p for m in (self.D_g, self.D_l) if m is not None for p in m.parameters()]
        if d_params:
            opts["D"] = torch.optim.Adam(d_params, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)
        return opts

    # ---------------------------------------------------------------------------------------------
    def degrees(self, degree: torch.Tensor, emotion: torch.Tensor) -> torch.Tensor:
        """(B,) scalar degree + (B,) emotion index -> (B,n) vector with one non-zero entry (paper §3.4)."""
        return F.one_hot(emotion.long(), len(self.emotions)).to(degree.dtype) * degree.unsqueeze(1)

    def train_step(self, batch, step):
        cfg = self.cfg
        I, Y, a, emo = batch["input"], batch["target"], batch["degree"], batch["emotion"]
        M = batch["mask"]
        M_l = M                                           # what D_l sees (Config.local_region)
        if cfg.local_region == "mouth+eyes":
            M_l = torch.maximum(M, losses.brows_eyes_box(batch["landmarks"], M.shape[-1]).to(M.dtype))
        avec = self.degrees(a, emo)
        if cfg.weight("tmp") > 0:
            # a±Δa clamped to [0,1] on the clip's own emotion entry (the others stay 0)
            lo = self.degrees((a - cfg.delta_a).clamp(0, 1), emo)
            hi = self.degrees((a + cfg.delta_a).clamp(0, 1), emo)
            a_all = torch.stack([avec, lo, hi], dim=1)        # (B,3,n): one encoder pass, 3 decodes
        else:
            a_all = avec.unsqueeze(1)
        G = self.net("G")
        warp_terms = any(cfg.weight(t) > 0 for t in ("flow_tv", "mask_prior", "flow_lmk", "mask_cavity",
                                                     "mask_cavity_log", "mask_change_log"))
        with self.autocast():
            if warp_terms:
                V_all, K_all, motion = G(I, a_all, with_motion=True)
            else:
                V_all, K_all = G(I, a_all)
                motion = None
        V = V_all[:, 0]
        out = {}

        # ---- D step: real Y(a) vs fake V(a) (detached), each D on one concatenated batch -----------
        if "D" in self.optimizers:
            with self.autocast():
                d_total = 0.0
                Vd = V.detach()
                if self.D_g is not None:
                    logits = self.net("D_g")(torch.cat([Y, Vd], 0))
                    real, fake = logits.chunk(2, 0)
                    l = losses.d_loss(real, fake, cfg.gan_loss)
                    out["d_g"] = l.detach()
                    d_total = d_total + l
                if self.D_l is not None:
                    logits = self.net("D_l")(torch.cat([Y * M_l, Vd * M_l], 0))
                    real, fake = logits.chunk(2, 0)
                    l = losses.d_loss(real, fake, cfg.gan_loss)
                    out["d_l"] = l.detach()
                    d_total = d_total + l
            self.optimize(d_total, "D")

        # ---- G step -----------------------------------------------------------------------------
        frozen = [m for m in (self.D_g, self.D_l) if m is not None]
        for m in frozen:
            set_requires_grad(m, False)
        try:
            with self.autocast():
                terms = {}
                if self.D_g is not None:
                    terms["g_g"] = (cfg.weight("gan_g"), losses.g_loss(self.D_g(V), cfg.gan_loss))
                if self.D_l is not None:
                    terms["g_l"] = (cfg.weight("gan_l"), losses.g_loss(self.D_l(V * M_l), cfg.gan_loss))
                terms["rec"] = (cfg.weight("rec"), losses.reconstruction(V, Y))
                if cfg.weight("gdl") > 0:
                    terms["gdl"] = (cfg.weight("gdl"), losses.gradient_difference(V, Y))
                if cfg.weight("mouth") > 0:
                    terms["mouth"] = (cfg.weight("mouth"), losses.masked_reconstruction(V, Y, M))
                if a_all.shape[1] == 3:
                    terms["tmp"] = (cfg.weight("tmp"), losses.temporal(V, V_all[:, 1], V_all[:, 2]))
                if K_all is not None and cfg.weight("lmk") > 0:
                    terms["lmk"] = (cfg.weight("lmk"), losses.landmark(K_all[:, 0], batch["landmarks"]))
                if motion is not None:
                    flow, mask = motion[0][:, 0], motion[1][:, 0]
                    if cfg.weight("flow_tv") > 0:
                        terms["flow_tv"] = (cfg.weight("flow_tv"), losses.flow_smoothness(flow))
                    if cfg.weight("mask_prior") > 0:
                        terms["mask_prior"] = (cfg.weight("mask_prior"), (1 - mask).mean())
                    if cfg.weight("flow_lmk") > 0:
                        terms["flow_lmk"] = (cfg.weight("flow_lmk"), losses.flow_landmarks(
                            flow, batch["landmarks"], batch["input_landmarks"]))
                    if cfg.weight("mask_cavity") > 0:
                        terms["mask_cavity"] = (cfg.weight("mask_cavity"),
                                                losses.mask_in_cavity(mask, batch["landmarks"],
                                                                      batch["input_landmarks"]))
                    if cfg.weight("mask_cavity_log") > 0:
                        terms["mask_cavity_log"] = (cfg.weight("mask_cavity_log"),
                                                    losses.mask_cavity_log(mask, batch["landmarks"],
                                                                           batch["input_landmarks"]))
                    if cfg.weight("mask_change_log") > 0:
                        with torch.no_grad():
                            moved = mo.warp(I, flow.detach())
                        terms["mask_change_log"] = (cfg.weight("mask_change_log"),
                                                    losses.mask_change_log(mask, Y, moved))
                total = sum(w * v for w, v in terms.values())
            self.optimize(total, "G")
        finally:
            for m in frozen:
                set_requires_grad(m, True)
        out.update({k: v.detach() for k, (w, v) in terms.items()})
        out["g_total"] = total.detach()
        return out

    # ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, first, weights, n_frames):
        ramp = torch.linspace(0, 1, n_frames, device=first.device, dtype=torch.float32)
        a = ramp.view(1, -1, 1) * weights.to(first.device, torch.float32).unsqueeze(1)   # (B,T,n)
        with self.autocast():
            frames, _ = self.G(first, a)
        return frames.float().clamp(-1, 1)

    @torch.no_grad()
    def generate_with_landmarks(self, first, weights, n_frames):
        """Like generate(), also returning the head's landmarks (B,T,68,2) in [0,1] (None without head)."""
        ramp = torch.linspace(0, 1, n_frames, device=first.device, dtype=torch.float32)
        a = ramp.view(1, -1, 1) * weights.to(first.device, torch.float32).unsqueeze(1)
        with self.autocast():
            frames, lmk = self.G(first, a)
        return frames.float().clamp(-1, 1), None if lmk is None else lmk.float()

    @torch.no_grad()
    def generate_motion(self, first, weights, n_frames):
        """output="warp" only: (flow, mask, residual), each (B,T,c,S,S) fp32 at the network's size, for a = 0…1
        (models.motion_output.relative/render apply them to a bigger crop of the same face)."""
        if self.G.output != "warp":
            raise ValueError("generate_motion needs a generator with output='warp'")
        ramp = torch.linspace(0, 1, n_frames, device=first.device, dtype=torch.float32)
        a = ramp.view(1, -1, 1) * weights.to(first.device, torch.float32).unsqueeze(1)
        with self.autocast():
            _, _, motion = self.G(first, a, with_motion=True)
        return tuple(t.float() for t in motion)

    @torch.no_grad()
    def sample_images(self, batch) -> np.ndarray:
        was = self.G.training
        self.G.eval()
        try:
            n = min(4, batch["input"].shape[0])
            first = batch["input"][:n]
            w = F.one_hot(batch["emotion"][:n].long(), len(self.emotions)).float()
            video = self.generate(first, w, 5)                             # a = 0, .25, .5, .75, 1
            rows = []
            for i in range(n):
                rows.append([to_uint8(first[i])] + [to_uint8(f) for f in video[i]] + [to_uint8(batch["target"][i])])
            return tile(rows)
        finally:
            self.G.train(was)
