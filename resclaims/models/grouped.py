"""G independent models of one architecture as one module: grouped convolutions.

Training many seeds is the product, and small CIFAR nets leave a GPU (or a CPU
core) idle between kernel launches. :func:`group` lays G models of one
architecture side by side along the channel dimension, so that one forward pass
computes all of them with the kernels of one model:

| layer of each model           | grouped layer                                    |
|-------------------------------|--------------------------------------------------|
| ``Conv2d(Ci, Co, groups=k)``  | ``Conv2d(G*Ci, G*Co, groups=G*k)``               |
| ``BatchNorm2d(C)``            | ``BatchNorm2d(G*C)``: statistics per channel, so per model |
| ``Linear(i, o)``              | :class:`GroupedLinear` ``(B, G*i) -> (B, G*o)``  |
| ReLU, pooling, dropout, ...   | unchanged: they act per channel or per element   |

Model g owns channels ``[g*C, (g+1)*C)`` of every activation and reads only its
own input channels, so the G models stay independent: the sum of their losses
has, for each model's parameters, that model's own gradient, and an elementwise
optimizer (SGD, Adam) steps each exactly as if alone. Every tensor of model g is
``grouped_tensor.view(G, *shape)[g]`` of the grouped one (:func:`member_state`).
A module that reshapes channels must say so with a ``groups`` attribute that
:func:`group` sets (as the option-A shortcut does for its zero padding); other
layer types are refused, and the containers' own ``forward`` code must act per
channel (ReLU, addition, global average pooling).

Forward passes take ``(B, G*C, H, W)``: model g's batch in channels g*C.., all
G batches of the same size. :func:`member_forward` runs one model on a batch of
its own size, through views of the grouped parameters, for the steps where the
batch sizes differ (a data set's last, partial batch).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

PASS_THROUGH = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Dropout, nn.Identity, nn.Flatten)


class GroupedLinear(nn.Module):
    """G independent ``Linear(in_features, out_features)``: (B, G*in) -> (B, G*out)."""

    def __init__(self, groups: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        self.weight = nn.Parameter(torch.empty(groups, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(groups, out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.unflatten(1, (self.groups, self.in_features)).transpose(0, 1)  # (G, B, in)
        z = torch.bmm(z, self.weight.transpose(1, 2))  # (G, B, out)
        if self.bias is not None:
            z = z + self.bias[:, None, :]
        return z.transpose(0, 1).flatten(1)  # (B, G*out)


def _grouped_layer(module: nn.Module, groups: int) -> nn.Module:
    """An empty grouped copy of one leaf module (parameters are filled in by :func:`group`)."""
    if isinstance(module, nn.Conv2d):
        return nn.Conv2d(groups * module.in_channels, groups * module.out_channels, module.kernel_size, module.stride,
                         module.padding, module.dilation, groups * module.groups, module.bias is not None,
                         module.padding_mode)  # fmt: skip
    if isinstance(module, nn.BatchNorm2d):
        return nn.BatchNorm2d(groups * module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)  # fmt: skip
    if isinstance(module, nn.Linear):
        return GroupedLinear(groups, module.in_features, module.out_features, module.bias is not None)
    if hasattr(module, "groups") and not isinstance(module, GroupedLinear):  # group-aware (e.g. ShortcutA)
        grouped = copy.deepcopy(module)
        grouped.groups = groups
        return grouped
    if isinstance(module, PASS_THROUGH):
        return copy.deepcopy(module)
    raise TypeError(f"cannot group {type(module).__name__}: no grouped version (see resclaims.models.grouped)")


def group(models: Sequence[nn.Module]) -> nn.Module:
    """The G ``models`` (one architecture, any initialisation) as one grouped module holding copies of their state."""
    models = list(models)
    first = models[0]
    if any(type(m) is not type(first) or m.state_dict().keys() != first.state_dict().keys() for m in models):
        raise ValueError("group() needs models of one architecture")
    grouped = copy.deepcopy(first)
    for name, module in first.named_modules():
        if name and not any(True for _ in module.children()):  # leaves
            grouped.set_submodule(name, _grouped_layer(module, len(models)))
    reference = next(first.parameters())
    grouped.to(device=reference.device, dtype=reference.dtype)
    states = [m.state_dict() for m in models]
    with torch.no_grad():
        for key, tensor in grouped.state_dict(keep_vars=True).items():
            if tensor.dim() == 0:  # e.g. BatchNorm's num_batches_tracked: one counter for all
                tensor.copy_(states[0][key])
            else:
                tensor.copy_(torch.stack([s[key] for s in states]).reshape(tensor.shape))
    return grouped


def member_tensors(grouped: nn.Module, template: nn.Module) -> dict[str, torch.Tensor]:
    """Model g's parameters and buffers as views into the grouped module's: name -> (G, *template's shape)."""
    shapes = {k: v.shape for k, v in template.state_dict().items()}
    tensors = {**dict(grouped.named_parameters()), **dict(grouped.named_buffers())}
    return {k: v if v.dim() == 0 else v.view(-1, *shapes[k]) for k, v in tensors.items()}


def member_state(grouped: nn.Module, g: int, template: nn.Module) -> dict[str, torch.Tensor]:
    """Model g's state dict, copied out of the grouped module (``template`` has the architecture)."""
    return {k: (v if v.dim() == 0 else v[g]).detach().clone() for k, v in member_tensors(grouped, template).items()}


def member_forward(grouped: nn.Module, template: nn.Module, g: int, x: torch.Tensor) -> torch.Tensor:
    """Model g alone on its own batch ``x`` (B_g, C, H, W), through views of the grouped parameters.

    Gradients reach the grouped parameters, and BatchNorm's running statistics
    are updated in place in the grouped buffers, exactly as a grouped pass would.
    ``template`` is the architecture (on the meta device, say); its ``training``
    flags follow the grouped module's.
    """
    template.train(grouped.training)
    tensors = {k: v if v.dim() == 0 else v[g] for k, v in member_tensors(grouped, template).items()}
    return functional_call(template, tensors, (x,))


def split_logits(z: torch.Tensor, groups: int) -> torch.Tensor:
    """Grouped outputs (B, G*K) as (G, B, K)."""
    return z.unflatten(1, (groups, -1)).transpose(0, 1)


def join_inputs(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    """G batches (B, C, H, W) of the same size as one grouped input (B, G*C, H, W)."""
    return torch.cat(list(xs), dim=1)


def pad_channels(x: torch.Tensor, before: int, after: int, groups: int = 1) -> torch.Tensor:
    """Zero-pad each of the ``groups`` channel blocks of x (B, G*C, H, W) to (B, G*(before+C+after), H, W)."""
    z = x.unflatten(1, (groups, -1))  # (B, G, C, H, W)
    return F.pad(z, (0, 0, 0, 0, before, after)).flatten(1, 2)
