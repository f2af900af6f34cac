"""Training/model configuration: one flat dataclass, presets `tiny` and `paper`, JSON in and out.

Plain data only (no torch here): a config travels inside checkpoints as a dict (`to_dict()`), which
`torch.load(weights_only=True)` accepts, and `ckpp --help` stays torch-free.

    cfg = preset("tiny")                       # 64², base width 8, 6 levels: seconds per step on a CPU
    cfg = preset("demo")                       # the demo recipe: 16…96 wide, motion output (docs/recipe.md)
    cfg = preset("paper")                      # 256² crop of 289², 64…512, 8 levels, Adam 2e-4 β=(0.5,0.999)
    cfg = load_config("my.json")               # {"preset": "paper", "batch_size": 64, ...} or a full dict
    cfg = cfg.replace(max_steps=100)           # overrides; unknown names are an error
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field

from ckpp_tools.errors import UsageError

from .atomic import atomic_write_bytes

#: the paper's crop: 289² stored frames, random 256² crops (DESIGN §7); other stored sizes keep the ratio
CROP_FRACTION = 256 / 289
#: Config.local_region values: what the local discriminator D_l sees
LOCAL_REGIONS = ("mouth", "mouth+eyes")
#: Config.crop_from values (models/data.py view_box)
CROP_FROM = ("clip", "onset")
#: Config.residual values (output="warp": how the residual meets the moved face, models/motion_output.py)
RESIDUALS = ("colour", "delta")


def default_loss_weights() -> dict[str, float]:
    """Weights of each loss term (a term with weight 0 is skipped, not just scaled).

    gan_g / gan_l: the generator's adversarial terms for D_g / D_l (the discriminators' own losses use 1);
    rec: L_r = |Y(a) - V(a)|_1 (pix2pix uses 100 next to a GAN term of 1); tmp: R_t; lmk: L_k;
    mouth: an extra L1 on the mouth mask's pixels only (not in the paper, so 0 there; the demo recipe uses it:
    the mouth is ~5% of the frame, so the whole-frame L1 barely notices whether it opened).
    flow_tv / mask_prior / flow_lmk / mask_cavity (output="warp" only, not in the paper): total variation of the
    displacement field (smooth motion), the mean of (1 − mask) (the residual colour only where the warp cannot
    explain the frame), the field's L1 error, in pixels, at the target frame's landmarks (losses.flow_landmarks),
    and the mask's mean inside the target's open mouth (losses.mask_in_cavity); mask_cavity_log: the same as a
    log-likelihood, −log(1 − mask), whose gradient does not vanish at the mask's saturated start
    (losses.mask_cavity_log); gdl: the gradient difference loss (losses.gradient_difference, Mathieu et al. 2016):
    edges of the generated frame as strong as the target's where they are, against the blur an L1 settles for;
    mask_change_log: −log(1 − mask) wherever the target differs from the moved input (losses.mask_change_log), so
    the residual may paint texture the warp cannot make outside the mouth too.
    The paper says only "slightly different weights" (§3.3), so these follow pix2pix's balance.
    """
    return {"gan_g": 1.0, "gan_l": 1.0, "rec": 100.0, "tmp": 10.0, "lmk": 10.0, "mouth": 0.0,
            "flow_tv": 0.0, "mask_prior": 0.0, "flow_lmk": 0.0, "mask_cavity": 0.0,
            "mask_cavity_log": 0.0, "gdl": 0.0, "mask_change_log": 0.0}


@dataclass
class Config:
    # --- images -------------------------------------------------------------------------------
    image_size: int = 64          # network input S (multiple of 2**levels); crops are resized to it
    crop_fraction: float = CROP_FRACTION  # random crop side / stored side (256/289, as the paper)
    flip: bool = True             # random horizontal flip (landmark indices mirrored with schema.FLIP_68)
    color_jitter: float = 0.0     # per-sample colour gains/brightness/contrast of ±this (0 = off, as the paper)
    gray_prob: float = 0.0        # probability of a grey sample (grey CK+ frames, old photos)
    scale_jitter: float = 0.0     # random crop side ±this fraction (face size varies in the wild)
    peak_bias: float = 0.0        # target frame drawn with P(t) ∝ 1 + peak_bias·a_t (0 = uniform, as the paper)
    # {emotion: k}: a joint run draws that expression's clips k times per epoch (an integer ≥ 1; {} = each clip
    # once, as the paper): more of the shared layers' updates for an expression that lags
    emotion_repeats: dict = field(default_factory=dict)
    # where the network's view of a clip comes from: "clip" = the central crop_fraction of prepare's box, which
    # holds the union of ALL the clip's frames (the paper's); "onset" = the same box made from the onset frame's
    # landmarks alone, which is what `ckpp generate` can take from a photo (face_geometry.crop_matrix). With
    # "clip", a face opening its jaw is trained 1.2x smaller in the view than photos show it (models/data.py)
    crop_from: str = "clip"
    # --- generator (ours) ---------------------------------------------------------------------
    base_width: int = 8           # channels of the first down layer; doubles per level up to max_width
    max_width: int = 64           # channel cap (paper: 512 = 8 * 64)
    levels: int = 6               # stride-2 down layers per encoder (= up layers in the decoder)
    landmark_head: bool = True    # 68×2 soft-argmax head on the decoder's second-to-last layer
    output: str = "pixels"        # "pixels" (the paper: tanh colour) | "warp" (flow + mask + residual, models/motion_output.py)
    residual: str = "colour"      # output="warp": the residual is a "colour" blended in, or a "delta" added to the
                                  # moved face (darker cavity, teeth, shading on the person's own skin)
    # --- discriminators -----------------------------------------------------------------------
    d_width: int = 16             # first-layer width of D_g and D_l (3 conv layers each)
    gan_loss: str = "bce"         # "bce" (non-saturating, paper eq. 3-4) | "hinge" | "lsgan"
    # --- loss terms (ablations: use_local_d=False is "w/o D_l", etc.) -------------------------
    loss_weights: dict = field(default_factory=default_loss_weights)
    use_global_d: bool = True
    use_local_d: bool = True      # D_l on mouth-masked frames
    # what D_l sees: "mouth" (the paper's: the mouth's convex hull) or "mouth+eyes" (also the box of the brows and
    # eyes, losses.brows_eyes_box: anger, sadness and surprise are read there, and an L1 paints them faintly)
    local_region: str = "mouth"
    use_landmarks: bool = True    # L_k
    use_temporal: bool = True     # R_t
    delta_a: float = 0.1          # Δa of R_t (paper §4.1)
    # --- baselines (models/baselines; "ours" ignores these) -----------------------------------
    clip_frames: int = 10         # frames uniformly sampled per clip for sequence models (onset and peak included)
    lstm_hidden: int = 64         # ConvLSTM hidden channels / HP landmark-LSTM width
    # --- optimisation -------------------------------------------------------------------------
    lr: float = 2e-4
    lr_decay: str = "none"        # "none" (constant, as the paper) | "linear" | "cosine": lr -> 0 at max_steps
    lr_decay_from: float = 0.0    # fraction of max_steps before the decay starts (0.8: constant for 80%, then down)
    betas: tuple = (0.5, 0.999)
    weight_decay: float = 0.0
    batch_size: int = 8           # GLOBAL batch; each of N torchrun processes takes batch_size // N
    max_steps: int = 2000         # optimiser steps (one G + one D update each)
    epochs: float | None = None   # if set (non-zero), overrides max_steps: ceil(epochs * train clips / batch_size)
    num_workers: int = 2
    seed: int = 0
    # --- bookkeeping --------------------------------------------------------------------------
    log_every: int = 10           # metrics.jsonl line every N steps
    sample_every: int = 200       # sample grid PNG every N steps (and at the end)
    ckpt_every: int = 200         # checkpoint every N steps (and at the end)
    keep_checkpoints: int = 3     # older ckpt-*.pt are deleted
    # --- runtime (the CLI fills these; stored for the record) ---------------------------------
    amp: str = "auto"             # "auto" (bf16 on CUDA, off on CPU) | "none" | "bf16" | "fp16"
    channels_last: str = "auto"   # "auto" (on CUDA) | "on" | "off"
    compile: bool = False         # torch.compile the generator and discriminators

    # ------------------------------------------------------------------------------------------
    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        weights = default_loss_weights()
        weights.update(self.loss_weights or {})
        self.loss_weights = weights
        self.validate()

    def validate(self) -> None:
        """Raise UsageError for values that cannot work, naming the field."""
        def bad(name, why):
            raise UsageError(f"config field {name!r}: {why}", path="--config", fix="edit the value in your config JSON")

        if self.levels < 2:
            bad("levels", "needs at least 2 levels")
        if self.image_size % (2 ** self.levels):
            bad("image_size", f"{self.image_size} is not a multiple of 2**levels = {2 ** self.levels}")
        if not 0.0 < self.crop_fraction <= 1.0:
            bad("crop_fraction", "must be in (0, 1]")
        if self.crop_from not in CROP_FROM:
            bad("crop_from", "must be one of " + " | ".join(CROP_FROM))
        if self.local_region not in LOCAL_REGIONS:
            bad("local_region", "must be one of " + " | ".join(LOCAL_REGIONS))
        if self.output not in ("pixels", "warp"):
            bad("output", "use pixels (the paper's decoder) or warp (motion output, models/motion_output.py)")
        if self.residual not in RESIDUALS:
            bad("residual", "use colour (blended in) or delta (added to the moved face), models/motion_output.py")
        if self.gan_loss not in ("bce", "hinge", "lsgan"):
            bad("gan_loss", "use bce, hinge or lsgan")
        if self.amp not in ("auto", "none", "bf16", "fp16"):
            bad("amp", "use auto, none, bf16 or fp16")
        if self.channels_last not in ("auto", "on", "off"):
            bad("channels_last", "use auto, on or off")
        if self.lr_decay not in ("none", "linear", "cosine"):
            bad("lr_decay", "use none, linear or cosine")
        if not 0.0 <= self.lr_decay_from < 1.0:
            bad("lr_decay_from", "must be in [0, 1)")
        for e, k in self.emotion_repeats.items():
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                bad("emotion_repeats", f"{e}: {k!r} is not a whole number ≥ 1 (how many times per epoch its clips are drawn)")
        if self.batch_size < 1 or self.max_steps < 0:
            bad("batch_size", "batch_size must be >= 1 and max_steps >= 0")
        unknown = set(self.loss_weights) - set(default_loss_weights())
        if unknown:
            bad("loss_weights", f"unknown terms {sorted(unknown)}; known: {sorted(default_loss_weights())}")

    def widths(self) -> list[int]:
        """Channels of down layer 1..levels: base, 2·base, … capped at max_width (paper: 64…512)."""
        return [min(self.base_width * 2 ** i, self.max_width) for i in range(self.levels)]

    def lr_at(self, step: int, max_steps: int | None = None) -> float:
        """Learning rate of optimiser step `step` (0-based) of `max_steps`: a pure function of the step, so a
        resumed run follows the same schedule (the optimiser state is restored, the rate recomputed)."""
        n = self.max_steps if max_steps is None else max_steps
        start = int(round(self.lr_decay_from * n))
        if self.lr_decay == "none" or step < start or n <= start:
            return self.lr
        p = min(1.0, (step - start) / (n - start))
        f = 1.0 - p if self.lr_decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
        return self.lr * f

    def weight(self, term: str) -> float:
        """Effective weight of a loss term: 0 when its switch is off."""
        switch = {"gan_g": self.use_global_d, "gan_l": self.use_local_d, "lmk": self.use_landmarks and self.landmark_head,
                  "tmp": self.use_temporal, "flow_tv": self.output == "warp",
                  "mask_prior": self.output == "warp", "flow_lmk": self.output == "warp",
                  "mask_cavity": self.output == "warp", "mask_cavity_log": self.output == "warp",
                  "mask_change_log": self.output == "warp"}.get(term, True)
        return float(self.loss_weights.get(term, 0.0)) if switch else 0.0

    def replace(self, **changes) -> "Config":
        """A copy with fields changed; None values are ignored (handy for CLI options left unset)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        """Plain JSON-able data (lists, not tuples) for checkpoints and config.json."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d


FIELDS = {f.name for f in dataclasses.fields(Config)}

PRESETS: dict[str, dict] = {
    # CPU-sized: trains a recognisable model on sample data in minutes
    "tiny": dict(image_size=64, base_width=8, max_width=64, levels=6, d_width=16, batch_size=8, max_steps=2000,
                 num_workers=2, sample_every=200, ckpt_every=200),
    # the demo recipe (docs/recipe.md): what lets a CPU-sized model animate faces it never saw, each choice
    # measured on held-out people. Width is the lever (16…96: mouth gain 0.04 IOD on held-out people vs -0.00
    # for tiny); the mouth L1, peak-biased targets and colour/scale jitter measured worse and stay off.
    # Motion output (issue 22): the face is moved, not redrawn — 4x the detail, better identity — with the
    # field taught at the data's landmarks and the mask at its opened mouths (flow_lmk, mask_cavity_log); the
    # residual a colour change on the person's own skin (residual="delta": a dark cavity, teeth, shading).
    # `ckpp demo` and the shipped pretrained weights use it. The view is the onset frame's (crop_from="onset"),
    # the face as large as `ckpp generate` shows a photo's: the clip's box made surprise 1.2x smaller in training,
    # and held-out motion 0.83 of the data's (benchmarks/bm_view_scale.py)
    "demo": dict(image_size=64, base_width=16, max_width=96, levels=6, d_width=16, batch_size=8, max_steps=1500,
                 num_workers=2, sample_every=250, ckpt_every=250, output="warp", residual="delta",
                 loss_weights={"flow_lmk": 10.0, "mask_cavity_log": 1.0}, crop_from="onset"),
    # the paper's setting (§4.1): 289² frames cropped to 256², 8 levels 64…512, Adam 2e-4; epochs are
    # counted by the caller (--epochs 2100 reproduces the paper's schedule)
    "paper": dict(image_size=256, base_width=64, max_width=512, levels=8, d_width=64, batch_size=64,
                  max_steps=200_000, num_workers=8, log_every=50, sample_every=2000, ckpt_every=2000),
}


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise UsageError(f"unknown config preset {name!r}", path="--config",
                         fix="use " + " | ".join(PRESETS) + " or a JSON file")
    return Config(**PRESETS[name])


def from_dict(d: dict) -> Config:
    """Config from plain data; a "preset" key starts from that preset. Unknown keys are an error (typos)."""
    d = dict(d)
    base = PRESETS.get(d.pop("preset", None) or "", {})
    unknown = set(d) - FIELDS
    if unknown:
        raise UsageError(f"unknown config fields {sorted(unknown)}", path="--config",
                         fix="known fields: " + ", ".join(sorted(FIELDS)))
    return Config(**{**base, **d})


def load_config(spec: str | os.PathLike) -> Config:
    """`tiny`, `paper`, or a JSON file (a full dict, or {"preset": ..., overrides})."""
    spec = os.fspath(spec)
    if spec in PRESETS:
        return preset(spec)
    if not os.path.isfile(spec):
        raise UsageError(f"no such config preset or file: {spec!r}", path="--config",
                         fix="use " + " | ".join(PRESETS) + " or the path of a JSON file")
    try:
        with open(spec) as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read config JSON: {exc}", path=spec, fix="write a JSON object of config fields")
    if not isinstance(data, dict):
        raise UsageError("config JSON must be an object", path=spec, fix='e.g. {"preset": "paper", "batch_size": 32}')
    return from_dict(data)


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    atomic_write_bytes(path, (json.dumps(cfg.to_dict(), indent=2) + "\n").encode())
