from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

from optuna_sosae import SOSAEPruner
from optuna_sosae import SOSAESampler
from optuna_sosae import active_width
from optuna_sosae import truncate_consumer
from optuna_sosae import truncate_producer
from optuna_sosae.data import make_linear
from optuna_sosae.models import load_model
from optuna_sosae.models import save_model
from optuna_sosae.training import SOSAEObjective
from optuna_sosae.training import TrainingConfig


def test_truncated_linear_layers_keep_the_prefix() -> None:
    producer, consumer = torch.nn.Linear(4, 6), torch.nn.Linear(6, 5)
    cut_p, cut_c = truncate_producer(producer, 2), truncate_consumer(consumer, 2)
    x = torch.randn(3, 4)
    h = producer(x)
    h[:, 2:] = 0
    assert torch.allclose(cut_p(x), h[:, :2])
    assert torch.allclose(cut_c(cut_p(x)), consumer(h), atol=1e-6)
    with pytest.raises(ValueError, match="7"):
        truncate_producer(producer, 7)
    with pytest.raises(TypeError, match="2.5"):
        truncate_consumer(consumer, 2.5)  # type: ignore[arg-type]


def test_truncating_a_converged_probe_is_lossless(tmp_path: Path) -> None:
    data = make_linear(k=5, n_features=40, n_samples=1000, seed=1)
    study = optuna.create_study(sampler=SOSAESampler(seed=0), pruner=SOSAEPruner())
    objective = SOSAEObjective(data, max_dim=16, config=TrainingConfig(epochs=40), seed=0)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED  # the probe converged
    probe = objective.last_model
    assert probe is not None
    x_val = torch.as_tensor(data.x_val)
    with torch.no_grad():
        latent = probe.encode(x_val)
        width = active_width(latent, probe.decoder_input.weight)
        full = float(((probe(x_val) - x_val) ** 2).mean())
        cut = probe.truncated(width)
        truncated = float(((cut(x_val) - x_val) ** 2).mean())
    assert width == study.trials[0].user_attrs["sosae_width"]
    assert 1 <= width < 16
    # The probe's own last recorded validation loss, before the bridge cut the tail.
    recorded = study.trials[0].system_attrs["sosae:last_val_loss"]
    assert truncated <= recorded * 1.01
    assert truncated <= full * 1.01

    path = tmp_path / "model.pt"
    save_model(cut, path, latent_dim=width)
    loaded, metadata = load_model(path)
    assert metadata == {"latent_dim": width}
    with torch.no_grad():
        assert torch.allclose(loaded(x_val), cut(x_val))
