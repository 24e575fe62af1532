"""The encoder: ``torchaudio.models.Conformer``, run layer by layer, with padding kept out of its convolutions.

torchaudio masks padded frames in self-attention only. Its depthwise convolution sees them, and attention in the
next layer spreads what it saw over the whole clip: measured on a 6-layer tiny model, every frame of a 200-frame
clip moved by 3e-3 to 0.2 when 100 frames of padding followed it. Tokens would then depend on which clips share
a batch. Zeroing the padded frames at the depthwise convolution's input makes them what the convolution's own
zero padding gives a clip alone, so a clip gets the same states (to float rounding) in any batch, in ``eval()``.
(In ``train()`` the batch norm after that convolution still pools statistics over the batch, padding included.)
"""

from __future__ import annotations

import threading

import torchaudio
from torch import Tensor, nn

from songcorpus.models.bestrq.features import padding_mask


class _ZeroPaddedDepthwiseConv(nn.Module):
    """A conformer layer's depthwise ``Conv1d``, fed zeros on the frames that ``padding`` marks.

    ``padding`` is set by :meth:`Encoder.forward` for the length of one call, per thread: a CPU worker
    runs several forwards of one model side by side, and each must see its own mask.
    """

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.conv = conv
        self._call = threading.local()

    @property
    def padding(self) -> Tensor | None:  # (batch, frames) of the call running on this thread
        return getattr(self._call, "padding", None)

    @padding.setter
    def padding(self, value: Tensor | None) -> None:
        self._call.padding = value

    def forward(self, x: Tensor) -> Tensor:  # (batch, channels, frames)
        if self.padding is not None:
            x = x.masked_fill(self.padding[:, None, :], 0.0)
        return self.conv(x)


class Encoder(nn.Module):
    """``(batch, frames, d_model)`` and frame lengths -> the output of the first ``layers`` conformer layers."""

    def __init__(self, d_model: int, num_layers: int, num_heads: int, ffn_dim: int, conv_kernel: int,
                 dropout: float) -> None:
        super().__init__()
        self.conformer = torchaudio.models.Conformer(
            input_dim=d_model, num_heads=num_heads, ffn_dim=ffn_dim, num_layers=num_layers,
            depthwise_conv_kernel_size=conv_kernel, dropout=dropout,
        )
        self.depthwise_convs: list[_ZeroPaddedDepthwiseConv] = []
        for layer in self.conformer.conformer_layers:
            sequential = layer.conv_module.sequential  # pointwise, GLU, depthwise, norm, SiLU, pointwise, dropout
            depthwise = sequential[2]
            if not (isinstance(depthwise, nn.Conv1d) and depthwise.groups == depthwise.in_channels == d_model):
                raise RuntimeError("torchaudio's ConformerLayer changed: conv_module.sequential[2] is no longer its "
                                   "depthwise Conv1d; update songcorpus.models.bestrq.encoder to the new layout")
            sequential[2] = _ZeroPaddedDepthwiseConv(depthwise)
            self.depthwise_convs.append(sequential[2])

    @property
    def num_layers(self) -> int:
        return len(self.conformer.conformer_layers)

    def forward(self, x: Tensor, lengths: Tensor, layers: int | None = None) -> Tensor:
        padding = padding_mask(lengths, x.shape[1])
        for conv in self.depthwise_convs:
            conv.padding = padding
        try:
            hidden = x.transpose(0, 1)  # torchaudio's layers take (frames, batch, d_model)
            for layer in self.conformer.conformer_layers[:layers]:
                hidden = layer(hidden, padding)
        finally:
            for conv in self.depthwise_convs:
                conv.padding = None
        return hidden.transpose(0, 1)
