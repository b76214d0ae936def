"""The one FLOP meter, used by SOSAE and by every baseline alike.

Counting FLOPs with :class:`torch.utils.flop_counter.FlopCounterMode` makes a step several
times slower, so the meter counts a step once for each distinct input signature and then only
multiplies. The counted step is the real one (the meter runs the user's own step function
under the counter), so what is counted is exactly what runs.
"""

from __future__ import annotations

from collections.abc import Callable
import logging
from typing import Any
from typing import TypeVar

import torch
from torch.utils.flop_counter import FlopCounterMode


_logger = logging.getLogger(__name__)

T = TypeVar("T")


def _signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    parts: list[Any] = []
    for arg in args:
        if isinstance(arg, torch.Tensor):
            parts.append((tuple(arg.shape), arg.dtype, arg.device.type))
        else:
            parts.append(type(arg).__name__)
    return tuple(parts)


def count_flops(fn: Callable[..., T], *args: Any) -> tuple[T, int]:
    """Run ``fn(*args)`` once under FlopCounterMode; return its result and the FLOPs counted."""
    with FlopCounterMode(display=False) as counter:
        result = fn(*args)
    return result, int(counter.get_total_flops())


class FlopMeter:
    """Counts the FLOPs of the steps a training loop runs through it.

    Call :meth:`run` with the step function and its tensors instead of calling the step
    directly. The first call for a given function and input signature (shapes, dtypes,
    device) runs under :class:`~torch.utils.flop_counter.FlopCounterMode`; later calls run
    plainly and add the cached count. A training step should do the forward pass, the loss and
    the backward pass (and may do the optimizer step, whose elementwise work the counter does
    not count); a validation step runs the forward pass under :func:`torch.no_grad`.

    Pass the same function object each time: the cache is keyed by it.

    Example:

        .. code-block:: python

            meter = FlopMeter()
            for xb in batches:
                loss = meter.run(train_step, xb)
            print(meter.total)
    """

    def __init__(self) -> None:
        self.total = 0
        self._cache: dict[tuple[Any, ...], int] = {}

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)``, add its FLOPs to :attr:`total` and return its result."""
        key = (fn, _signature(args))
        flops = self._cache.get(key)
        if flops is None:
            result, flops = count_flops(fn, *args)
            self._cache[key] = flops
            _logger.debug(
                "Counted %d FLOPs for one call of %s with %s.",
                flops,
                getattr(fn, "__qualname__", repr(fn)),
                key[1],
            )
        else:
            result = fn(*args)
        self.total += flops
        return result

    def add(self, flops: int) -> None:
        """Add FLOPs measured elsewhere, for example by :func:`count_flops`."""
        if flops < 0:
            raise ValueError(f"flops must be non-negative, got {flops!r}.")
        self.total += int(flops)
