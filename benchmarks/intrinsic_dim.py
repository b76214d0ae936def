"""The width SOSAE finds on data of known intrinsic dimension, over several seeds.

Run: ``python benchmarks/intrinsic_dim.py`` (about half a minute on 2 CPU cores). Each row is
one probe with the defaults of ``optuna-sosae tune`` (tolerance 0.05, 60 epochs):

- ``linear``: ``make_linear(k=5, n_features=40)``, 5 factors mixed linearly, noise 0.05, at
  max-dim 32 (what ``optuna-sosae tune --dataset synthetic --max-dim 32 --seed S`` runs);
- ``manifold``: ``make_manifold(k=3, n_features=40)``, 3 angles each placed on a circle and
  mixed into 40 features, at max-dim 16. For it the script also trains plain models directly
  at widths k and 2k and prints their validation loss as a share of the data's variance, to
  show which widths the tolerance would have allowed.

``python benchmarks/intrinsic_dim.py --lr-sweep`` (about three minutes) instead probes the
linear data of seed 0 at five learning rates over the range that
``examples/multi_worker_postgres.py`` leaves to TPE, three training seeds each, as that
example's workers do.
"""

from __future__ import annotations

import argparse

import optuna
import torch

from optuna_sosae import SOSAEPruner
from optuna_sosae import SOSAESampler
from optuna_sosae.data import Dataset
from optuna_sosae.data import make_linear
from optuna_sosae.data import make_manifold
from optuna_sosae.training import SOSAEObjective
from optuna_sosae.training import TrainingConfig
from optuna_sosae.training import train


SEEDS = (0, 1, 2, 3, 4)


LEARNING_RATES = (1e-3, 1.4e-3, 2e-3, 2.8e-3, 4e-3)


def probe(
    data: Dataset, max_dim: int, seed: int, config: TrainingConfig | None = None
) -> tuple[int | None, int, str]:
    study = optuna.create_study(sampler=SOSAESampler(seed=seed), pruner=SOSAEPruner())
    config = config or TrainingConfig()
    objective = SOSAEObjective(data, max_dim=max_dim, config=config, seed=seed)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    epochs = len(trial.system_attrs["sosae:trajectory"][0])
    return (
        trial.system_attrs.get("sosae:converged_width"),
        epochs,
        trial.system_attrs["sosae:outcome"],
    )


def lr_sweep() -> None:
    data = make_linear(k=5, n_features=40, seed=0)
    print("lr       seed  width  epochs  outcome")
    for lr in LEARNING_RATES:
        for seed in (0, 1, 2):
            width, epochs, outcome = probe(data, 32, seed, TrainingConfig(lr=lr))
            print(f"{lr:.1e}  {seed:4}  {width!s:>5}  {epochs:6}  {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr-sweep", action="store_true", help="vary the learning rate")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    if args.lr_sweep:
        lr_sweep()
        return
    print("data      k  seed  width  epochs  outcome")
    for seed in SEEDS:
        width, epochs, outcome = probe(make_linear(k=5, n_features=40, seed=seed), 32, seed)
        print(f"linear    5  {seed:4}  {width!s:>5}  {epochs:6}  {outcome}")
    for seed in SEEDS:
        data = make_manifold(k=3, n_features=40, seed=seed)
        width, epochs, outcome = probe(data, 16, seed)
        direct = [train(data, d, TrainingConfig(), seed=seed).val_loss for d in (3, 6)]
        shares = ", ".join(
            f"width {d}: {loss / data.baseline_loss:.2%}"
            for d, loss in zip((3, 6), direct, strict=True)
        )
        print(f"manifold  3  {seed:4}  {width!s:>5}  {epochs:6}  {outcome}  (direct {shares})")


if __name__ == "__main__":
    main()
