from __future__ import annotations

import math

import pytest
import torch

from optuna_sosae import SOSAEPenalty
from optuna_sosae import active_width
from optuna_sosae import position_weights
from optuna_sosae import width_within_tolerance
from optuna_sosae.data import make_linear
from optuna_sosae.models import AutoencoderConfig
from optuna_sosae.models import MLPAutoencoder


def test_power_and_exponential_weights_grow_with_position() -> None:
    power = position_weights(5, kind="power", gamma=1.0)
    assert power.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    exponential = position_weights(4, kind="exponential", beta=0.5)
    assert torch.allclose(exponential, torch.tensor([1.0, 1.5, 2.25, 3.375]))
    # A long vector must not overflow.
    assert math.isfinite(float(position_weights(2000, kind="exponential", beta=0.01)[-1]))


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "cubic"}, {"kind": "power", "gamma": -1.0}, {"kind": "exponential", "beta": -0.1}],
)
def test_bad_weight_settings_name_the_value(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=repr(list(kwargs.values())[-1])):
        SOSAEPenalty(1.0, **kwargs)  # type: ignore[arg-type]


def test_penalty_value_matches_its_formula() -> None:
    latent = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -0.5]])
    weight = torch.tensor([[3.0, 0.0, 1.0], [4.0, 1.0, 0.0]])  # column norms 5, 1, 1
    penalty = SOSAEPenalty(0.1, kind="power", gamma=1.0)
    expected = 0.1 * (1 * 2.0 * 5 + 2 * 1.0 * 1 + 3 * 0.5 * 1)
    assert float(penalty(latent, weight)) == pytest.approx(expected)


def test_rescaling_dodges_plain_penalty_but_not_the_decoder_weighted_one() -> None:
    torch.manual_seed(0)
    latent = torch.randn(32, 6)
    weight = torch.randn(10, 6)
    penalty = SOSAEPenalty(1.0)
    # Shrinking the code by 10 and growing the decoder by 10 leaves the reconstruction as is.
    plain_before, plain_after = penalty(latent), penalty(latent / 10)
    proof_before, proof_after = penalty(latent, weight), penalty(latent / 10, weight * 10)
    assert float(plain_after) == pytest.approx(float(plain_before) / 10, rel=1e-5)
    assert float(proof_after) == pytest.approx(float(proof_before), rel=1e-5)


def _train(weighted: bool, epochs: int = 25) -> MLPAutoencoder:
    data = make_linear(k=3, n_features=12, n_samples=400, seed=0)
    x = torch.as_tensor(data.x_train)
    torch.manual_seed(0)
    model = MLPAutoencoder(AutoencoderConfig(12, 8, (32,)))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    penalty = SOSAEPenalty(0.05)
    for _ in range(epochs):
        for start in range(0, len(x), 50):
            batch = x[start : start + 50]
            latent = model.encode(batch)
            decoder = model.decoder_input.weight if weighted else None
            loss = ((model.decode(latent) - batch) ** 2).mean() + penalty(latent, decoder)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    return model


def test_training_dodges_the_plain_penalty_by_growing_the_decoder() -> None:
    # Measured, not assumed: under the plain penalty the network shrinks the code and grows
    # the decoder columns; the decoder-weighted penalty leaves no such way out.
    plain = _train(weighted=False)
    proof = _train(weighted=True)
    plain_norm = float(plain.decoder_input.weight.detach().norm(dim=0).max())
    proof_norm = float(proof.decoder_input.weight.detach().norm(dim=0).max())
    assert plain_norm > 1.5 * proof_norm


def test_active_width_is_last_unit_above_relative_threshold_plus_one() -> None:
    activity = torch.tensor([[4.0, 0.0, 1.0, 0.01, 0.0]])
    assert active_width(activity, threshold=0.1) == 3  # unit 1 is silent but inside the prefix
    assert active_width(activity, threshold=0.001) == 4
    assert active_width(torch.zeros(3, 5)) == 0
    with pytest.raises(ValueError, match="1.5"):
        active_width(activity, threshold=1.5)


def test_width_within_tolerance_bisects_a_falling_curve() -> None:
    losses = {d: 1.0 / (1 + d) for d in range(0, 33)}
    calls: list[int] = []

    def loss(d: int) -> float:
        calls.append(d)
        return losses[d]

    width = width_within_tolerance(loss, upper=32, baseline_loss=1.0, tolerance=0.05)
    target = losses[32] + 0.05
    assert losses[width] <= target < losses[width - 1]
    assert len(calls) <= 8
