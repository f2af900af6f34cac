"""D_g (whole frames) and D_l (mouth-masked frames): 3-conv-layer PatchGANs (paper §3.2, §4.1).

Unconditional, as the paper's eq. 3-4 (D sees V(a) or Y(a) alone). No normalisation layers: the D step
scores real and fake frames in one concatenated batch (one forward per backward, as DDP wants) and the G
step scores fakes alone, so BatchNorm's batch statistics would differ between the two; plain
Conv-LeakyReLU keeps each patch score independent of the rest of the batch.
"""
from __future__ import annotations

from torch import nn

from .layers import init_weights


class PatchDiscriminator(nn.Module):
    """Conv(4,s2)-LReLU -> Conv(4,s2)-LReLU -> Conv(4,s1): a map of real/fake logits, one per patch."""

    def __init__(self, width: int = 64, cin: int = 3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(cin, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * width, 1, 4, 1, 1),
        )
        init_weights(self)

    def forward(self, x):
        return self.net(x)
