"""D2L's ``Residual`` block, exactly as source 004 prints it.

From "Dive into Deep Learning" (Zhang, Lipton, Li, Smola), section 8.6, quoted by
source 004 ("Residual Neural Network"): conv3x3 (stride ``strides``) - BN - ReLU -
conv3x3 - BN, plus the input, then ReLU. Where the input and the residual differ
in shape, "Use 1 x 1 convolution with a new stride or new channel respectively"
(004): ``use_1x1conv=True`` adds ``conv3``, a 1x1 convolution *with bias* (D2L
keeps PyTorch's default ``bias=True`` on every conv), so it adds
``in * out + out`` parameters.

| block                                     | parameters                          |
|-------------------------------------------|-------------------------------------|
| ``Residual(c_in, c)``                     | 9 c_in c + 9 c² + 6c                |
| ``Residual(c_in, c, use_1x1conv=True)``   | 9 c_in c + 9 c² + 6c + (c_in c + c) |
| ``Residual(3, 3)``                        | 180                                 |
| ``Residual(3, 6, True, strides=2)``       | 546                                 |

(2 convs with bias: 9 c_in c + c and 9 c² + c; 2 BNs: 4c.) Without the 1x1 conv the
block only runs when ``c_in == c`` and ``strides == 1``.

Two details are the source's and are kept: ``self.relu`` is created but never
used (``forward`` calls ``F.relu``), and the shortcut is added in place
(``Y += X``). Initialisation is PyTorch's default, as in D2L.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Residual(nn.Module):
    """The Residual block of ResNet (D2L, as printed in source 004)."""

    def __init__(self, input_channels: int, num_channels: int, use_1x1conv: bool = False, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)
        self.relu = nn.ReLU(inplace=True)  # unused, as in the source; it has no parameters

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))  # (B, num_channels, ceil(H/s), ceil(W/s))
        Y = self.bn2(self.conv2(Y))  # same shape
        if self.conv3:
            X = self.conv3(X)  # (B, num_channels, ceil(H/s), ceil(W/s))
        Y += X  # a shape mismatch here is the "Problem" 004 names, and raises RuntimeError
        return F.relu(Y)
