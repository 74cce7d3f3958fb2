"""The seed-003 network: 10 residual (or plain) blocks on 24x24 CIFAR-10 crops, as Keras builds it.

Source 003 ("Introduction to ResNet in TensorFlow 2") defines it with the Keras
functional API::

    inputs = keras.Input(shape=(24, 24, 3))
    x = layers.Conv2D(32, 3, activation='relu')(inputs)          # valid: 22x22
    x = layers.Conv2D(64, 3, activation='relu')(x)               # valid: 20x20
    x = layers.MaxPooling2D(3)(x)                                # pool 3, stride 3: 6x6
    for i in range(10): x = res_net_block(x, 64, 3)              # or non_res_block
    x = layers.Conv2D(64, 3, activation='relu')(x)               # valid: 4x4
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation='relu')(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(10, activation='softmax')(x)

    res_net_block:  Conv2D(same, relu), BN, Conv2D(same), BN, Add(x), ReLU
    non_res_block:  Conv2D(same, relu), BN, Conv2D(same, relu), BN

Keras defaults, reproduced here: every Conv2D and Dense has a bias (zeros) and a
glorot-uniform kernel; BatchNormalization has momentum 0.99 and epsilon 1e-3
(PyTorch's ``momentum`` is one minus Keras', so 0.01), gamma 1, beta 0, moving
mean 0, moving variance 1. The model returns logits: the softmax is folded into
the loss (:func:`torch.nn.functional.cross_entropy`), which is how Keras >= 2.5
computes ``sparse_categorical_crossentropy`` on a softmax output too.

``blocks`` sets the number of blocks (10 in the source; claim K3 varies it) and
``width`` scales every layer's channel count (1.0 in the source; the quick tier
narrows the net). At width 1.0 with 10 blocks both versions have 816,650
trainable parameters; Keras' ``summary()`` counts 819,210, adding the BN layers'
moving means and variances (the shortcut has no parameters).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

KERAS_BN_MOMENTUM = 0.99  # Keras: moving = momentum * moving + (1 - momentum) * batch
KERAS_BN_EPSILON = 1e-3


def keras_batch_norm(channels: int) -> nn.BatchNorm2d:
    """``layers.BatchNormalization()`` with Keras' defaults, in PyTorch's convention."""
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPSILON, momentum=1 - KERAS_BN_MOMENTUM)


class KerasBlock(nn.Module):
    """``res_net_block`` (residual) or ``non_res_block`` (plain) of source 003, in its layer order."""

    def __init__(self, channels: int, residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.conv1 = nn.Conv2d(channels, channels, 3, padding="same")
        self.bn1 = keras_batch_norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding="same")
        self.bn2 = keras_batch_norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bn1(F.relu(self.conv1(x)))  # Conv2D(relu), BN
        if self.residual:
            z = self.bn2(self.conv2(z))  # Conv2D (no activation), BN
            return F.relu(z + x)  # Add, ReLU
        return self.bn2(F.relu(self.conv2(z)))  # Conv2D(relu), BN


class Keras003(nn.Module):
    """Source 003's CIFAR-10 classifier on (B, 3, 24, 24) inputs; returns (B, 10) logits."""

    def __init__(self, blocks: int = 10, residual: bool = True, width: float = 1.0, dropout: float = 0.5) -> None:
        super().__init__()
        if blocks < 0:
            raise ValueError(f"blocks must be >= 0, got {blocks}")
        c32, c64, c256 = (max(1, round(c * width)) for c in (32, 64, 256))
        self.blocks_count, self.residual = blocks, residual
        self.conv1 = nn.Conv2d(3, c32, 3)  # Keras padding 'valid'
        self.conv2 = nn.Conv2d(c32, c64, 3)
        self.pool = nn.MaxPool2d(3)  # MaxPooling2D(3): stride = pool size, 'valid'
        self.blocks = nn.Sequential(*(KerasBlock(c64, residual) for _ in range(blocks)))
        self.conv3 = nn.Conv2d(c64, c64, 3)
        self.fc1 = nn.Linear(c64, c256)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(c256, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)  # Keras 'glorot_uniform'
                nn.init.zeros_(m.bias)  # Keras 'zeros'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.relu(self.conv1(x))  # (B, 32, 22, 22)
        z = F.relu(self.conv2(z))  # (B, 64, 20, 20)
        z = self.pool(z)  # (B, 64, 6, 6)
        z = self.blocks(z)  # (B, 64, 6, 6)
        z = F.relu(self.conv3(z))  # (B, 64, 4, 4)
        z = z.mean(dim=(2, 3))  # (B, 64) GlobalAveragePooling2D
        z = self.dropout(F.relu(self.fc1(z)))  # (B, 256)
        return self.fc2(z)  # (B, 10) logits; softmax lives in the loss


def keras_resnet(blocks: int = 10, **kwargs) -> Keras003:
    return Keras003(blocks, residual=True, **kwargs)


def keras_plain(blocks: int = 10, **kwargs) -> Keras003:
    return Keras003(blocks, residual=False, **kwargs)
