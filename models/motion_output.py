"""Motion-based output of the generator: a frame is the input *moved*, not the input *redrawn*.

Why: a 64² decoder that paints every pixel loses the face's detail (the 64-px face scaled up is ~0.12× as sharp as
the photo) and some of its identity, and its pixels cannot be shown at the photo's own resolution. Modern portrait
animators (the first-order motion model's occlusion-aware generator, LivePortrait's warping module) instead predict
where each pixel comes from plus an occlusion mask, and paint only what the motion cannot explain. With
`Config.output = "warp"` the decoder's last layer predicts, at the network's resolution, 6 channels:

    flow     (2): backward displacement, in grid_sample's normalised units (2 = the image's width): the pixel
                  at p comes from p + flow(p) of the input. Normalised units make the field resolution-free: the
                  same field upsampled to a 4× bigger crop moves 4× as many pixels;
    mask     (1): sigmoid, 1 = take the warped input, 0 = take the residual (mouth cavity, teeth);
    residual (3): tanh colour, in [-1, 1] like the images;

    frame = mask · warp(I, flow) + (1 − mask) · residual        (grid_sample, bilinear, border padding)

With `Config.residual = "delta"` the residual is instead a colour *change*, DELTA_SCALE·tanh, added to the moved
face where the mask lets it:

    frame = warp(I, flow) + (1 − mask) · residual

Why: an absolute colour must be painted from scratch for every person — at 64² it is a generic blob (a grey-pink
smear where a mouth opened, measured on held-out people) — while "darker here, brighter there" carries over
from one face to the next, and what is not changed stays the person's own, sharp pixels. At its zero start the
mask then costs nothing to lower, so it can open where the data shows new texture (the cavity, the teeth).

The last layer starts at zero weights with a positive mask bias (MASK_BIAS), so an untrained warp generator
returns (almost exactly) its input: training starts from identity, not from noise.

At generation time the field is applied to the face crop taken at the photo's own resolution (`render`):
frames are defined relative to frame 0's prediction (flow_t − flow_0, blend weight = the mask's drop from frame 0),
so frame 0 is exactly the input however well the network reconstructs it, and `feather` fades the motion out
towards the crop's border so a pasted-back face has no seam.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: output channels of the decoder's last layer in warp mode: flow (2), mask (1), residual (3)
CHANNELS = 6
#: range of a "delta" residual: ±2 spans the whole [-1, 1] colour range (a white tooth on a black cavity)
DELTA_SCALE = 2.0
#: initial bias of the mask channel: sigmoid(4) = 0.982, the warped input dominates from the first step while
#: the mask's gradient (σ' = 0.018) is still alive
MASK_BIAS = 4.0


def split(raw: torch.Tensor, residual: str = "colour") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decoder output (N,6,H,W) -> flow (N,2,H,W) normalised units, mask (N,1,H,W) in (0,1), residual (N,3,H,W):
    a colour in [-1, 1] (residual="colour") or a change in ±DELTA_SCALE (residual="delta")."""
    res = torch.tanh(raw[:, 3:6])
    return raw[:, :2], torch.sigmoid(raw[:, 2:3]), res * DELTA_SCALE if residual == "delta" else res


def base_grid(n: int, h: int, w: int, device, dtype) -> torch.Tensor:
    """grid_sample's identity grid (N,H,W,2) for align_corners=False: pixel centres in [-1, 1]."""
    xs = (torch.arange(w, device=device, dtype=torch.float64) * 2 + 1) / w - 1
    ys = (torch.arange(h, device=device, dtype=torch.float64) * 2 + 1) / h - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).to(dtype).unsqueeze(0).expand(n, h, w, 2)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """image (N,C,H,W) sampled at p + flow(p); flow (N,2,h,w) normalised, upsampled to H×W when smaller.
    Without gradients, an image whose flow is zero everywhere is returned as it is (grid_sample's float32 grid
    is off by ~1e-5 px at sides that are no power of two); in training every sample is sampled (the flow of a
    zero-initialised layer must receive its gradient)."""
    n, _, h, w = image.shape
    exact = not (torch.is_grad_enabled() and (flow.requires_grad or image.requires_grad))
    still = (flow.detach().flatten(1) == 0).all(1) if exact else torch.zeros(n, dtype=torch.bool, device=flow.device)
    if bool(still.all()):
        return image
    if flow.shape[-2:] != (h, w):
        flow = upsample(flow, h, w)
    grid = base_grid(n, h, w, image.device, image.dtype) + flow.permute(0, 2, 3, 1).to(image.dtype)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return torch.where(still.view(n, 1, 1, 1), image, out) if bool(still.any()) else out


def compose(image: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor, residual: torch.Tensor,
            additive: bool = False) -> torch.Tensor:
    """The frame: mask · warp(image, flow) + (1 − mask) · residual, or with additive=True (a "delta" residual)
    warp(image, flow) + (1 − mask) · residual (all fields at image's size or upsampled)."""
    h, w = image.shape[-2:]
    if mask.shape[-2:] != (h, w):
        mask, residual = upsample(mask, h, w), upsample(residual, h, w)
    moved = warp(image, flow)
    return moved + (1 - mask) * residual if additive else mask * moved + (1 - mask) * residual


def upsample(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return x if x.shape[-2:] == (h, w) else F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)


def init_last_layer(conv: torch.nn.Module) -> None:
    """Zero the output layer (weights and bias) and give the mask channel MASK_BIAS: output = input at start."""
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.bias[2] = MASK_BIAS


def feather(size: int, fraction: float, device=None) -> torch.Tensor:
    """(size,size) weight rising linearly from 0 at the crop's border to 1 at `fraction`·size inside it."""
    i = torch.arange(size, device=device, dtype=torch.float32)
    ramp = torch.minimum(i + 0.5, size - i - 0.5) / max(fraction * size, 1.0)
    ramp = ramp.clamp(0, 1)
    return torch.minimum(ramp[None, :], ramp[:, None])


def relative(flow: torch.Tensor, mask: torch.Tensor, residual: torch.Tensor, size: int,
             border: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The motion of a video (T frames at the network's size, frame 0 = degree 0) relative to its frame 0, at
    `size`: (flow_t − flow_0 (T,2,size,size) normalised, blend weight clamp(mask_0 − mask_t, 0, 1) (T,1,..),
    residual (T,3,..)). With border > 0 both fade to zero over that fraction of the crop at its edge."""
    dflow = upsample((flow - flow[:1]).float(), size, size)
    weight = upsample((mask[:1] - mask).clamp(0, 1).float(), size, size)
    res = upsample(residual.float(), size, size)
    if border > 0:
        f = feather(size, border, flow.device)
        dflow, weight = dflow * f, weight * f
    return dflow, weight, res


def render(crop: torch.Tensor, dflow: torch.Tensor, weight: torch.Tensor, residual: torch.Tensor,
           additive: bool = False) -> torch.Tensor:
    """Frames (T,3,S,S) of one crop (1,3,S,S) in [-1,1] moved by relative motion (from `relative`):
    (1 − weight) · warp(crop, dflow) + weight · residual, or warp(crop, dflow) + weight · residual for a "delta"
    residual (additive=True). Zero motion returns the crop."""
    t = dflow.shape[0]
    moved = warp(crop.expand(t, *crop.shape[1:]), dflow)
    return moved + weight * residual if additive else (1 - weight) * moved + weight * residual
