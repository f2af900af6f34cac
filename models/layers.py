"""Building blocks shared by the generator, discriminators and baselines (pix2pix-style, paper §3.2)."""
from __future__ import annotations

import torch
from torch import nn


class Down(nn.Module):
    """Conv(4, stride 2) -> BatchNorm -> LeakyReLU(0.2): halves the resolution (pix2pix encoder layer).

    `norm=False` for the first layer (normalising raw pixels only removes information) and the innermost
    (1×1 features: BatchNorm over one value per channel per sample is degenerate at batch size 1)."""

    def __init__(self, cin: int, cout: int, norm: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)
        self.norm = nn.BatchNorm2d(cout) if norm else nn.Identity()
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class Up(nn.Module):
    """ConvTranspose(4, stride 2) -> BatchNorm -> ReLU: doubles the resolution (pix2pix decoder layer)."""

    def __init__(self, cin: int, cout: int, norm: bool = True, act: bool = True):
        super().__init__()
        self.conv = nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=not norm)
        self.norm = nn.BatchNorm2d(cout) if norm else nn.Identity()
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class Encoder(nn.Module):
    """`levels` Down layers; returns every layer's output (the feature hierarchy used as U-Net skips)."""

    def __init__(self, widths: list[int], cin: int = 3):
        super().__init__()
        n = len(widths)
        chans = [cin] + list(widths)
        self.layers = nn.ModuleList(
            Down(chans[i], chans[i + 1], norm=0 < i < n - 1) for i in range(n)
        )

    def forward(self, x) -> list[torch.Tensor]:
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class SoftArgmax2d(nn.Module):
    """K heatmap channels -> K (x, y) points in [0,1] of the map (differentiable expected position).

    The paper "stacks another 68-dimensional channel on top of the second-to-last layer" of the decoder
    (§3.3): one heatmap per landmark, read out as its expected position so L_k compares coordinates."""

    def __init__(self, cin: int, k: int = 68):
        super().__init__()
        self.proj = nn.Conv2d(cin, k, 1)

    def forward(self, x) -> torch.Tensor:
        h = self.proj(x).float()
        b, k, hh, ww = h.shape
        p = torch.softmax(h.flatten(2), dim=-1).view(b, k, hh, ww)
        xs = (torch.arange(ww, device=x.device, dtype=p.dtype) + 0.5) / ww
        ys = (torch.arange(hh, device=x.device, dtype=p.dtype) + 0.5) / hh
        return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], dim=-1)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Normal init as the paper ("all parameters normally initialized", pix2pix's N(0, 0.02); BN γ ~ N(1, 0.02))."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
