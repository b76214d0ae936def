from __future__ import annotations

import pytest
import torch

from optuna_sosae import FlopMeter
from optuna_sosae import count_flops
from optuna_sosae.models import AutoencoderConfig
from optuna_sosae.models import MLPAutoencoder


def _analytic_training_step(widths: list[int], batch: int) -> int:
    pairs = list(zip(widths[:-1], widths[1:], strict=True))
    macs = sum(fan_in * fan_out for fan_in, fan_out in pairs)
    forward = 2 * batch * macs
    weight_grads = 2 * batch * macs
    # The first layer computes no gradient for its input (the data needs none).
    input_grads = 2 * batch * (macs - pairs[0][0] * pairs[0][1])
    return forward + weight_grads + input_grads


@pytest.mark.parametrize(("width", "batch"), [(3, 16), (8, 7)])
def test_meter_matches_analytic_count_for_linear_layers(width: int, batch: int) -> None:
    model = MLPAutoencoder(AutoencoderConfig(10, width, (12,)))
    x = torch.randn(batch, 10)

    def step(batch_x: torch.Tensor) -> None:
        loss = ((model(batch_x) - batch_x) ** 2).mean()
        loss.backward()  # type: ignore[no-untyped-call]

    _, flops = count_flops(step, x)
    expected = _analytic_training_step([10, 12, width, 12, 10], batch)
    assert flops == expected
    # Below the textbook 6 x parameters x samples, because of the first layer.
    weights = sum(p.numel() for name, p in model.named_parameters() if "weight" in name)
    assert flops < 6 * weights * batch


def test_meter_counts_each_signature_once_and_multiplies() -> None:
    calls: list[int] = []

    def matmul(a: torch.Tensor) -> torch.Tensor:
        calls.append(a.shape[0])
        return a @ torch.ones(a.shape[1], 4)

    meter = FlopMeter()
    for _ in range(5):
        meter.run(matmul, torch.ones(3, 2))
    assert meter.total == 5 * 2 * 3 * 2 * 4
    meter.run(matmul, torch.ones(6, 2))  # a new shape is counted anew
    assert meter.total == 5 * 48 + 96
    assert len(calls) == 6  # every call really ran
    with pytest.raises(ValueError, match="-1"):
        meter.add(-1)
