"""Loss terms of the paper (§3.3): GAN (D_g, D_l), L_r, R_t, L_k. Each a small function, so ablations and
baselines pick what they need. GAN losses take raw logits (autocast-safe)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss(real: torch.Tensor, fake: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Discriminator loss on logits. bce: -log D(Y) - log(1 - D(V)) (paper eq. 3-4); hinge; lsgan."""
    real, fake = real.float(), fake.float()
    if kind == "bce":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "lsgan":
        return ((real - 1) ** 2).mean() + (fake ** 2).mean()
    raise ValueError(f"unknown gan_loss {kind!r}")


def g_loss(fake: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Generator's adversarial loss on D's logits for V(a). bce: the non-saturating -log D(V) (Goodfellow
    et al.; the paper's min-max form saturates early in training); hinge: -D(V); lsgan: (D(V)-1)²."""
    fake = fake.float()
    if kind == "bce":
        return F.softplus(-fake).mean()
    if kind == "hinge":
        return -fake.mean()
    if kind == "lsgan":
        return ((fake - 1) ** 2).mean()
    raise ValueError(f"unknown gan_loss {kind!r}")


def reconstruction(v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L_r = ||Y(a) - V(a)||_1, as a per-pixel mean."""
    return F.l1_loss(v.float(), y.float())


def temporal(v: torch.Tensor, v_minus: torch.Tensor, v_plus: torch.Tensor) -> torch.Tensor:
    """R_t = ||V(a) - V(a-Δa)||_1 + ||V(a) - V(a+Δa)||_1 (paper eq. 5): all three are GENERATED frames
    (no ground truth at a±Δa exists), computed independently, and the gradient flows through all three."""
    v = v.float()
    return F.l1_loss(v, v_minus.float()) + F.l1_loss(v, v_plus.float())


def landmark(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """L_k = ||K̂(a) - K(a)||_2: Euclidean norm of the 136-vector per sample (coordinates in [0,1] of the
    crop), averaged over the batch."""
    return (pred.float() - true.float()).flatten(1).norm(dim=1).mean()


def masked_reconstruction(v: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """||(Y - V)·M||_1 averaged over the mask's pixels (not the frame's): the mouth region's own L1, so its
    weight does not shrink with the mouth's share of the frame. M (B,1,S,S) in {0,1}."""
    m = mask.float()
    return ((v.float() - y.float()).abs() * m).sum() / (m.sum() * v.shape[1]).clamp_min(1.0)


def gradient_difference(v: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The gradient difference loss (Mathieu, Couprie & LeCun 2016, alpha = 1): | |dY| - |dV| | for horizontal and
    vertical neighbour differences, per-pixel mean. Why: an L1 on pixels is content with a faint, blurred version
    of thin texture (a brow furrow, the lines of a wrinkled nose) that moves few pixels' worth of loss; this term
    asks for edges as strong as the target's at each place."""
    v, y = v.float(), y.float()
    gx = ((y[..., :, 1:] - y[..., :, :-1]).abs() - (v[..., :, 1:] - v[..., :, :-1]).abs()).abs().mean()
    gy = ((y[..., 1:, :] - y[..., :-1, :]).abs() - (v[..., 1:, :] - v[..., :-1, :]).abs()).abs().mean()
    return gx + gy


def flow_smoothness(flow: torch.Tensor) -> torch.Tensor:
    """Total variation of a displacement field (N,2,H,W) in grid_sample's normalised units, measured in pixels of
    the field (×W/2): mean |∂x| + |∂y| (warp output; a smooth field moves skin, it does not tear it)."""
    scale = flow.shape[-1] / 2.0
    dx = (flow[..., :, 1:] - flow[..., :, :-1]).abs().mean()
    dy = (flow[..., 1:, :] - flow[..., :-1, :]).abs().mean()
    return (dx + dy) * scale


def flow_landmarks(flow: torch.Tensor, target_lm: torch.Tensor, input_lm: torch.Tensor) -> torch.Tensor:
    """Landmark supervision of a backward displacement field (warp output): at each of the target frame's
    landmarks (B,68,2 in [0,1] of the frame) the field must point back to the same landmark in the input frame.
    Mean L1 in pixels of the field. Why: a photometric L1 gives a flow only local gradients, so large motions
    (the jaw dropping, brows rising) are learnt slowly; the data's landmarks say where each part went
    (keypoint-driven motion, as in the first-order motion model and LivePortrait)."""
    g_t = target_lm.to(flow.dtype) * 2 - 1                        # [0,1] pixel-edge coords -> grid_sample's [-1,1]
    f = F.grid_sample(flow, g_t.unsqueeze(2), mode="bilinear", padding_mode="border", align_corners=False)
    src = g_t + f[..., 0].transpose(1, 2)                          # (B,68,2): where the field samples the input
    return (src - (input_lm.to(flow.dtype) * 2 - 1)).abs().mean() * (flow.shape[-1] / 2.0)


def inner_mouth(landmarks: torch.Tensor, size: int) -> torch.Tensor:
    """(B,1,size,size) {0,1}: pixels inside the inner-lip polygon (landmarks 60-67, [0,1] of the frame) — the
    open mouth's cavity (empty for closed lips). Even-odd rule at the pixel centres, vectorised."""
    poly = landmarks[:, 60:68].float()                              # (B,8,2)
    c = (torch.arange(size, device=landmarks.device, dtype=torch.float32) + 0.5) / size
    y, x = c.view(1, 1, size, 1), c.view(1, 1, 1, size)
    xi, yi = poly[..., 0, None, None], poly[..., 1, None, None]     # (B,8,1,1)
    xj, yj = poly.roll(-1, 1)[..., 0, None, None], poly.roll(-1, 1)[..., 1, None, None]
    crosses = ((yi > y) != (yj > y)) & (x < (xj - xi) * (y - yi) / (yj - yi + 1e-12) + xi)
    return (crosses.sum(1, keepdim=True) % 2).float()


def mask_in_cavity(mask: torch.Tensor, target_lm: torch.Tensor, input_lm: torch.Tensor) -> torch.Tensor:
    """Mean of the warp output's blend mask where the target frame's mouth is open and the input's was not
    (0 when no mouth opened). Why: a warp of a closed mouth cannot show the cavity (teeth and lips only stretch);
    the data's landmarks say where it opened, so the mask is taught to hand those pixels to the residual."""
    cav = opened_mouth(mask, target_lm, input_lm)
    return (mask * cav).sum() / cav.sum().clamp(min=1.0)


def opened_mouth(mask: torch.Tensor, target_lm: torch.Tensor, input_lm: torch.Tensor) -> torch.Tensor:
    """(B,1,S,S) {0,1} at the mask's size: inside the target's inner lips and not the input's (the cavity that
    opened), in the mask's dtype."""
    s = mask.shape[-1]
    return (inner_mouth(target_lm, s) - inner_mouth(input_lm, s)).clamp(min=0).to(mask.dtype)


def mask_cavity_log(mask: torch.Tensor, target_lm: torch.Tensor, input_lm: torch.Tensor) -> torch.Tensor:
    """−log(1 − mask) averaged where the target's mouth is open and the input's was not: `mask_in_cavity` as a
    log-likelihood. Why: the mask starts at sigmoid(MASK_BIAS) = 0.98, where the plain mean's gradient through the
    sigmoid is 0.018 — measured, it never moved (0.987 after 2,600 steps), the residual behind it was never
    trained, and an opened mouth stayed a stretched closed one (a pink smear, no dark cavity, no teeth). This
    term's gradient at the logit is the mask itself (~1): the cavity is handed to the residual within a few
    hundred steps, and the L1 then teaches the residual the cavity's and the teeth's colour."""
    return open_nll(mask, opened_mouth(mask, target_lm, input_lm))


def open_nll(mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """−log(1 − mask) averaged with `weight` (0 when the weight is 0 everywhere): the mask asked to open where
    `weight` says, with a gradient that does not vanish at its saturated start (mask_cavity_log, mask_change_log)."""
    nll = -torch.log((1 - mask.float()).clamp_min(1e-4))
    return (nll * weight).sum() / weight.sum().clamp(min=1.0)


def change_map(target: torch.Tensor, moved: torch.Tensor, floor: float = 0.03, span: float = 0.1) -> torch.Tensor:
    """(B,1,S,S) in [0,1], no gradient: where the target differs from the input as the field moved it — the
    texture the warp cannot make (a furrow, a narrowed lid's shadow, a darker fold). The channel-mean |Y − moved|
    is averaged over 3×3 (one pixel of misalignment along an edge is not texture), then rises from 0 at `floor` to
    1 at floor + span (colours in [-1, 1])."""
    c = (target.float() - moved.float()).abs().mean(1, keepdim=True)
    c = F.avg_pool2d(c, 3, stride=1, padding=1, count_include_pad=False)
    return ((c - floor) / span).clamp(0, 1).detach()


def mask_change_log(mask: torch.Tensor, target: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
    """−log(1 − mask) weighted by `change_map`: `mask_cavity_log` for every place the target needs new texture,
    not only an opened mouth. Why: with a "delta" residual the frame is warp + (1 − mask)·residual, and the mask
    starts at 0.98 — outside the mouth the residual is gated to 2% of its range and the mask's gradient through
    the saturated sigmoid is 0.018, so anger's furrows and narrowed lids were never painted (a faint generic band
    over the brows was). This hands those pixels to the residual; the L1 then teaches its colour, and where the
    target equals the moved input the term is 0. `moved` should carry no gradient (the field is not asked to
    make the change larger)."""
    return open_nll(mask, change_map(target, moved))


def brows_eyes_box(landmarks: torch.Tensor, size: int, margin: float = 0.15) -> torch.Tensor:
    """(B,1,size,size) {0,1}: the box around the brows and eyes (landmarks 17-26, 36-47, [0,1] of the frame),
    grown by `margin` of its width on every side — where anger's furrows, a sad brow's slant and a surprised
    eye's white are, for the local discriminator (Config.local_region)."""
    pts = torch.cat([landmarks[:, 17:27], landmarks[:, 36:48]], 1).float()
    lo, hi = pts.amin(1), pts.amax(1)                                # (B,2)
    pad = (hi[:, :1] - lo[:, :1]) * margin
    lo, hi = lo - pad, hi + pad
    c = (torch.arange(size, device=landmarks.device, dtype=torch.float32) + 0.5) / size
    inx = (c.view(1, -1) >= lo[:, :1]) & (c.view(1, -1) <= hi[:, :1])   # (B,size)
    iny = (c.view(1, -1) >= lo[:, 1:]) & (c.view(1, -1) <= hi[:, 1:])
    return (iny[:, None, :, None] & inx[:, None, None, :]).float()
