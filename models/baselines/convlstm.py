"""ConvLSTM baseline (Shi et al. 2015) as the paper adapted it (§4): a convolutional LSTM rolled over the
10 output steps at the bottleneck of a U-Net, whose encoder/decoder replace ConvLSTM's conv layers.

    x_1 --U-Net encoder--> skips s_1..s_L (s_L: 4×4 bottleneck z)
    h_t, c_t = ConvLSTM(z, h_{t-1}, c_{t-1}),  t = 1..10          (z is the input at every step)
    frame_t = U-Net decoder(z + W h_t, skips s_1..s_{L-1} of x_1)

Shi et al.'s encoder–forecaster reads several past frames; here there is one, so the encoder is the U-Net
encoder over the first frame and the forecaster unrolls from it. The encoder stops at 4×4 (not 1×1 as the
main model's 8 levels at 256²) so the recurrent state keeps a spatial layout, which is the point of a
ConvLSTM. Trained with L1 on all 10 frames + the global GAN loss D_g (SequenceFamily.train_step).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..layers import Encoder, init_weights
from .common import ConvLSTMCell, SequenceFamily, UNetDecoder, expand_time

#: spatial side of the bottleneck the ConvLSTM runs at
LSTM_SIDE = 4


def unet_widths(cfg) -> list[int]:
    """The main model's widths, cut where the feature map reaches LSTM_SIDE² (tiny 64²: 4 levels
    8…64; paper 256²: 6 levels 64…512)."""
    levels = min(cfg.levels, max(1, int(math.log2(cfg.image_size // LSTM_SIDE))))
    return cfg.widths()[:levels]


class ConvLSTMGenerator(nn.Module):
    def __init__(self, widths: list[int], hidden: int, n_frames: int):
        super().__init__()
        self.n_frames = n_frames
        c = widths[-1]
        self.encoder = Encoder(widths)
        self.decoder = UNetDecoder(widths)
        self.cell = ConvLSTMCell(c, hidden)
        self.out = nn.Conv2d(hidden, c, 1)
        init_weights(self)
        with torch.no_grad():  # init_weights zeroes biases: restore the forget-gate bias of 1
            self.cell.gates.bias[hidden:2 * hidden].fill_(1.0)

    def forward(self, first: torch.Tensor, n_frames: int | None = None) -> torch.Tensor:
        """first (B,3,S,S) in [-1,1] -> (B,T,3,S,S) in [-1,1]; all T frames decoded in one batched pass."""
        n = n_frames or self.n_frames
        b = first.shape[0]
        feats = self.encoder(first)
        z = feats[-1]
        state = self.cell.init_state(z)
        hs = []
        for _ in range(n):
            state = self.cell(z, state)
            hs.append(state[0])
        h = torch.stack(hs, dim=1).flatten(0, 1)                      # (B·T, hidden, 4, 4)
        bottleneck = expand_time(z, n) + self.out(h)
        skips = [expand_time(f, n) for f in feats[:-1]] + [bottleneck]
        frames = self.decoder(skips)
        return frames.view(b, n, *frames.shape[1:])


class ConvLSTMFamily(SequenceFamily):
    name = "convlstm"

    def __init__(self, cfg, emotions):
        super().__init__(cfg, emotions)
        self.G = ConvLSTMGenerator(unet_widths(cfg), cfg.lstm_hidden, self.n_native)

    def forward_train(self, G, batch):
        return G(batch["input"]), {}

    def native(self, first, **kw):
        return self.G(first)
