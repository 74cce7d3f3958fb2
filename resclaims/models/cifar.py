"""He et al.'s CIFAR-10 networks, residual and plain, depth 6n+2.

From "Deep Residual Learning for Image Recognition" (He, Zhang, Ren, Sun, 2015,
arXiv:1512.03385), section 4.2: a 3x3 conv with 16 filters, then three stages of
n basic blocks with {16, 32, 64} filters on {32, 16, 8} feature maps, global
average pooling and a 10-way fully connected layer. Stages 2 and 3 start with a
stride-2 conv. The residual version uses option A shortcuts: identity, and where
the shape changes, subsampling with stride 2 and zero-padding the new channels,
so the shortcut has no parameters and a residual net and its plain twin have the
same parameter count.

| name        | n   | parameters | He et al. Table 6 |
|-------------|-----|------------|-------------------|
| ResNet-20   | 3   | 269,722    | 0.27M             |
| ResNet-32   | 5   | 464,154    | 0.46M             |
| ResNet-44   | 7   | 658,586    | 0.66M             |
| ResNet-56   | 9   | 853,018    | 0.85M             |
| ResNet-110  | 18  | 1,727,962  | 1.7M              |
| ResNet-1202 | 200 | 19,421,274 | 19.4M             |

Initialisation: conv and fc weights ``kaiming_normal_(mode="fan_out")`` as in the
authors' Torch code (fb.resnet.torch) and torchvision; BN weight 1 and bias 0;
fc bias 0. ``batch_norm=False`` drops every BN (for the vanishing-gradient
contrast of claim D3); convs then get a bias. ``widths`` narrows the three
stages (the quick tier of claims D1-D2 trains (4, 8, 16)); the default is He's.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from resclaims.models.grouped import pad_channels

WIDTHS = (16, 32, 64)


class ShortcutA(nn.Module):
    """Option A shortcut: subsample spatially by ``stride`` and zero-pad to ``out_channels``.

    ``groups`` > 1 pads each of that many channel blocks (G models side by side, see
    :mod:`resclaims.models.grouped`).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, groups: int = 1) -> None:
        super().__init__()
        self.stride, self.groups = stride, groups
        self.pad = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]  # (B, G*C_in, H/s, W/s)
        if self.pad:
            x = pad_channels(x, self.pad // 2, self.pad - self.pad // 2, self.groups)  # (B, G*C_out, H/s, W/s)
        return x


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut if ``residual``, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, residual: bool, batch_norm: bool = True) -> None:
        super().__init__()
        norm = nn.BatchNorm2d if batch_norm else lambda c: nn.Identity()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=not batch_norm)
        self.bn1 = norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=not batch_norm)
        self.bn2 = norm(out_channels)
        self.shortcut = ShortcutA(in_channels, out_channels, stride) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.relu(self.bn1(self.conv1(x)))
        z = self.bn2(self.conv2(z))
        if self.shortcut is not None:
            z = z + self.shortcut(x)
        return F.relu(z)


class CifarNet(nn.Module):
    """He et al.'s CIFAR-10 net of depth 6n+2, residual (option A) or plain."""

    def __init__(
        self,
        depth: int,
        residual: bool = True,
        batch_norm: bool = True,
        num_classes: int = 10,
        widths: tuple[int, int, int] = WIDTHS,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, 1202), got {depth}")
        n = (depth - 2) // 6
        self.depth, self.residual = depth, residual
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=not batch_norm)
        self.bn = nn.BatchNorm2d(widths[0]) if batch_norm else nn.Identity()
        blocks, in_channels = [], widths[0]
        for stage, width in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_channels, width, stride, residual, batch_norm))
                in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(widths[-1], num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.relu(self.bn(self.conv(x)))  # (B, 16, 32, 32)
        z = self.blocks(z)  # (B, 64, 8, 8)
        z = z.mean(dim=(2, 3))  # (B, 64)
        return self.fc(z)  # (B, 10)


def resnet(depth: int, **kwargs) -> CifarNet:
    return CifarNet(depth, residual=True, **kwargs)


def plain(depth: int, **kwargs) -> CifarNet:
    return CifarNet(depth, residual=False, **kwargs)


def resnet20() -> CifarNet: return resnet(20)
def resnet32() -> CifarNet: return resnet(32)
def resnet44() -> CifarNet: return resnet(44)
def resnet56() -> CifarNet: return resnet(56)
def resnet110() -> CifarNet: return resnet(110)
def resnet1202() -> CifarNet: return resnet(1202)
def plain20() -> CifarNet: return plain(20)
def plain56() -> CifarNet: return plain(56)
