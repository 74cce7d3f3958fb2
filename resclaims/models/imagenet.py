"""He et al.'s ImageNet ResNets and their plain twins, and VGG-19 for comparison.

From "Deep Residual Learning for Image Recognition" (He, Zhang, Ren, Sun, 2015,
arXiv:1512.03385), Table 1 and section 3.3: a 7x7/2 conv with 64 filters, a 3x3/2
max-pool, four stages of blocks with {64, 128, 256, 512} base widths on
{56, 28, 14, 7} maps (stages 2-4 start with stride 2), global average pooling and
a 1000-way fc. ResNet-18/34 stack basic blocks (two 3x3 convs); ResNet-50/101/152
stack bottleneck blocks (1x1, 3x3, 1x1 with 4x expansion). Shortcuts are identity
where the shape is kept; where it changes, option B (the default) projects with a
1x1 conv and BN, option A subsamples and zero-pads (no parameters). The plain
twin (``residual=False``) is the same stack with no shortcuts.

Stride placement: the paper's models (Caffe, "v1") put the stride 2 of a
bottleneck in its first 1x1 conv; torchvision's "ResNet v1.5" puts it in the 3x3
conv. Parameter counts are identical; multiply-adds are not. ``stride_in_1x1=True``
(the default) is the paper's v1.

| name       | blocks per stage | weighted layers | parameters (option B) | multiply-adds at 224x224 (v1) | He et al. Table 1 |
|------------|------------------|-----------------|-----------------------|-------------------------------|-------------------|
| ResNet-18  | 2, 2, 2, 2       | 18              | 11,689,512            | 1,814,073,344                 | 1.8 billion       |
| ResNet-34  | 3, 4, 6, 3       | 34              | 21,797,672            | 3,663,761,408                 | 3.6 billion       |
| ResNet-50  | 3, 4, 6, 3       | 50              | 25,557,032            | 3,857,973,248                 | 3.8 billion       |
| ResNet-101 | 3, 4, 23, 3      | 101             | 44,549,160            | 7,570,194,432                 | 7.6 billion       |
| ResNet-152 | 3, 8, 36, 3      | 152             | 60,192,808            | 11,282,415,616                | 11.3 billion      |
| plain-34   | 3, 4, 6, 3       | 34              | 21,623,848            | 3,644,493,824                 | 3.6 billion       |
| VGG-19     | (config E)       | 19              | 143,667,240           | 19,632,062,464                | 19.6 billion      |

VGG-19 is configuration E of Simonyan & Zisserman, "Very Deep Convolutional
Networks for Large-Scale Image Recognition" (2014, arXiv:1409.1556): sixteen 3x3
convs in five groups, each closed by a 2x2 max-pool, then fc-4096, fc-4096,
fc-1000. It takes 224x224 inputs, as in the paper.

Weighted layers count the convs and fc layers on the main path, not the
projection shortcuts (the paper's convention: "34 layers" = 1 + 2x16 + 1).
Multiply-adds are those of the convs and the fc layer, as counted by
``torch.utils.flop_counter`` (see :mod:`resclaims.models.counting`). Initialisation: convs
``kaiming_normal_(mode="fan_out")`` ("as in [13]", He et al.), BN weight 1 and bias
0, fc layers PyTorch's default; these models are built to be counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from resclaims.models.cifar import ShortcutA

WIDTHS = (64, 128, 256, 512)  # base width of each stage
DEPTHS = {  # depth: (blocks per stage, bottleneck)
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
    152: ((3, 8, 36, 3), True),
}
SHORTCUTS = ("A", "B")


@dataclass(frozen=True)
class ResNetConfig:
    depth: int = 34  # 18, 34 (basic blocks) or 50, 101, 152 (bottleneck blocks)
    residual: bool = True  # False builds the plain twin: the same layers, no shortcuts
    shortcut: str = "B"  # where the shape changes: "B" 1x1 projection + BN, "A" subsample and zero-pad
    stride_in_1x1: bool = True  # bottleneck stride in the first 1x1 (paper, v1) or in the 3x3 (torchvision v1.5)
    num_classes: int = 1000  # ImageNet classes

    def __post_init__(self) -> None:
        if self.depth not in DEPTHS:
            raise ValueError(f"depth must be one of {sorted(DEPTHS)} (He et al. Table 1), got {self.depth}")
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be 'A' (zero-padding) or 'B' (projection), got {self.shortcut!r}")


class Projection(nn.Module):
    """Option B shortcut: a 1x1 conv with ``stride`` (no bias) and BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))  # (B, C_out, H/s, W/s)


def make_shortcut(cfg: ResNetConfig, in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """None for the plain twin; identity, option A or option B for a residual net."""
    if not cfg.residual:
        return None
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if cfg.shortcut == "A":
        return ShortcutA(in_channels, out_channels, stride)
    return Projection(in_channels, out_channels, stride)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut if any, then ReLU (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cfg: ResNetConfig, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = make_shortcut(cfg, in_channels, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.relu(self.bn1(self.conv1(x)))  # (B, width, H/s, W/s)
        z = self.bn2(self.conv2(z))  # (B, width, H/s, W/s)
        if self.shortcut is not None:
            z = z + self.shortcut(x)
        return F.relu(z)


class Bottleneck(nn.Module):
    """1x1-BN-ReLU-3x3-BN-ReLU-1x1-BN (4x expansion), plus the shortcut if any, then ReLU."""

    expansion = 4

    def __init__(self, cfg: ResNetConfig, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out_channels = width * self.expansion
        s1, s3 = (stride, 1) if cfg.stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, width, 1, s1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, s3, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = make_shortcut(cfg, in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.relu(self.bn1(self.conv1(x)))  # (B, width, H/s1, W/s1)
        z = F.relu(self.bn2(self.conv2(z)))  # (B, width, H/s, W/s)
        z = self.bn3(self.conv3(z))  # (B, 4 width, H/s, W/s)
        if self.shortcut is not None:
            z = z + self.shortcut(x)
        return F.relu(z)


class ResNet(nn.Module):
    """He et al.'s ImageNet ResNet of ``cfg.depth`` layers, or its plain twin."""

    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers, bottleneck = DEPTHS[cfg.depth]
        block = Bottleneck if bottleneck else BasicBlock
        self.conv = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn = nn.BatchNorm2d(64)
        blocks, in_channels = [], 64
        for stage, (n, width) in enumerate(zip(layers, WIDTHS, strict=True)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(block(cfg, in_channels, width, stride))
                in_channels = width * block.expansion
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_channels, cfg.num_classes)
        _init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.relu(self.bn(self.conv(x)))  # (B, 64, 112, 112) at 224x224
        z = F.max_pool2d(z, 3, 2, 1)  # (B, 64, 56, 56)
        z = self.blocks(z)  # (B, 512 or 2048, 7, 7)
        z = z.mean(dim=(2, 3))  # (B, 512 or 2048)
        return self.fc(z)  # (B, num_classes)


VGG19_CONVS = ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4)  # configuration E, five groups


class VGG(nn.Module):
    """VGG-19 (configuration E): 16 3x3 convs with ReLU in five max-pooled groups, then three fc layers."""

    def __init__(self, groups: tuple[tuple[int, ...], ...] = VGG19_CONVS, num_classes: int = 1000) -> None:
        super().__init__()
        layers, in_channels = [], 3
        for group in groups:
            for width in group:
                layers += [nn.Conv2d(in_channels, width, 3, 1, 1), nn.ReLU(inplace=True)]
                in_channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, num_classes),
        )  # fmt: skip
        _init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)  # (B, 512, 7, 7) at 224x224, the paper's input size
        return self.classifier(z.flatten(1))  # (B, num_classes)


def _init_conv_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def resnet(depth: int, **kwargs) -> ResNet:
    return ResNet(ResNetConfig(depth, residual=True, **kwargs))


def plain(depth: int, **kwargs) -> ResNet:
    return ResNet(ResNetConfig(depth, residual=False, **kwargs))


def resnet18(**kwargs) -> ResNet: return resnet(18, **kwargs)
def resnet34(**kwargs) -> ResNet: return resnet(34, **kwargs)
def resnet50(**kwargs) -> ResNet: return resnet(50, **kwargs)
def resnet101(**kwargs) -> ResNet: return resnet(101, **kwargs)
def resnet152(**kwargs) -> ResNet: return resnet(152, **kwargs)
def plain34(**kwargs) -> ResNet: return plain(34, **kwargs)
def vgg19(**kwargs) -> VGG: return VGG(**kwargs)
