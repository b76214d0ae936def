"""Warm-starting the tuned model from the truncated probe versus retraining from scratch.

Run: ``python benchmarks/warm_start.py`` (about a minute on 2 CPU cores). For each data set
and seed it runs one SOSAE probe, then trains a model at the probe's width two ways, with the
same FLOP meter: from scratch for the full budget, and from the truncated probe (no penalty)
for the epochs the probe left unused. It prints validation loss, downstream accuracy and FLOPs
of both.
"""

from __future__ import annotations

import statistics

import optuna
import torch

from optuna_sosae import SOSAEPruner
from optuna_sosae import SOSAESampler
from optuna_sosae import tuned_latent_dim
from optuna_sosae.data import load_digits
from optuna_sosae.data import make_linear
from optuna_sosae.training import SOSAEObjective
from optuna_sosae.training import TrainingConfig
from optuna_sosae.training import downstream_accuracy
from optuna_sosae.training import train


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    config = TrainingConfig()
    print("data     seed width probe_ep | scratch loss acc GFLOP | warm loss acc GFLOP")
    rows: dict[str, list[tuple[float, float, float, float]]] = {}
    for name, loader, max_dim in (("digits", load_digits, 64), ("linear", make_linear, 32)):
        for seed in (0, 1, 2):
            data = loader(seed=seed)
            study = optuna.create_study(sampler=SOSAESampler(seed=seed), pruner=SOSAEPruner())
            objective = SOSAEObjective(data, max_dim=max_dim, config=config, seed=seed)
            study.optimize(objective, n_trials=1)
            width = tuned_latent_dim(study)
            probe = objective.last_model
            if width is None or probe is None:
                print(f"{name:8} {seed:4} probe did not converge")
                continue
            probe_epochs = len(study.trials[0].system_attrs["sosae:trajectory"][0])

            scratch = train(data, width, config, seed=seed)
            remaining = TrainingConfig(epochs=max(1, config.epochs - probe_epochs))
            warm = train(data, width, remaining, seed=seed, init=probe.truncated(width))
            scratch_acc = downstream_accuracy(scratch.model, data) or 0.0
            warm_acc = downstream_accuracy(warm.model, data) or 0.0
            rows.setdefault(name, []).append(
                (scratch.val_loss, warm.val_loss, scratch_acc, warm_acc)
            )
            print(
                f"{name:8} {seed:4} {width:5} {probe_epochs:8} | "
                f"{scratch.val_loss:.5f} {scratch_acc:.3f} {scratch.flops / 1e9:6.2f} | "
                f"{warm.val_loss:.5f} {warm_acc:.3f} {warm.flops / 1e9:6.2f}"
            )
    for name, values in rows.items():
        ratio = statistics.mean(w / s for s, w, _, _ in values)
        points = statistics.mean(100 * (sa - wa) for _, _, sa, wa in values)
        print(f"{name}: warm/scratch loss ratio {ratio:.3f}, accuracy gap {points:+.1f} points")


if __name__ == "__main__":
    main()
