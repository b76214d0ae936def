"""Cutting the layers around the latent code down to its first units."""

from __future__ import annotations

import torch
from torch import nn


def _check_width(width: int, available: int) -> None:
    if isinstance(width, bool) or not isinstance(width, int):
        raise TypeError(f"width must be an int, got {width!r} of type {type(width).__name__}.")
    if not 1 <= width <= available:
        raise ValueError(f"width must be between 1 and {available}, got {width}.")


def truncate_producer(layer: nn.Linear, width: int) -> nn.Linear:
    """Return a copy of the layer that produces the latent code, keeping its first outputs.

    Args:
        layer:
            The :class:`torch.nn.Linear` whose outputs are the latent units.
        width:
            How many leading latent units to keep.
    """
    _check_width(width, layer.out_features)
    cut = nn.Linear(
        layer.in_features,
        width,
        bias=layer.bias is not None,
        device=layer.weight.device,
        dtype=layer.weight.dtype,
    )
    with torch.no_grad():
        cut.weight.copy_(layer.weight[:width])
        if layer.bias is not None and cut.bias is not None:
            cut.bias.copy_(layer.bias[:width])
    return cut


def truncate_consumer(layer: nn.Linear, width: int) -> nn.Linear:
    """Return a copy of the layer that consumes the latent code, keeping its first inputs.

    The bias is kept whole: it does not depend on the latent units.
    """
    _check_width(width, layer.in_features)
    cut = nn.Linear(
        width,
        layer.out_features,
        bias=layer.bias is not None,
        device=layer.weight.device,
        dtype=layer.weight.dtype,
    )
    with torch.no_grad():
        cut.weight.copy_(layer.weight[:, :width])
        if layer.bias is not None and cut.bias is not None:
            cut.bias.copy_(layer.bias)
    return cut
