"""A user's own Optuna worker with SOSAE, run as a process by the multi-worker tests.

It is what a user writes: an objective with its own hyperparameter (the learning rate, left to
the base sampler) and the latent width, a training run connected through ``SOSAEBridge``, and
``study.optimize`` with ``SOSAESampler`` and ``SOSAEPruner`` on a shared RDB storage with a
heartbeat. The tests also import it to run the same objective in their own process.

Usage: python tests/sosae_worker.py URL STUDY_NAME [--n-trials N] [--sleep S] [--grace G]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import optuna
import torch

import optuna_sosae
from optuna_sosae.data import make_linear
from optuna_sosae.training import TrainingConfig
from optuna_sosae.training import train


# Small and quick: with these settings a probe settles to 3 or 4 dimensions in 20 to 120
# epochs, whatever learning rate in LR_RANGE the base sampler draws.
MAX_DIM = 12
CONFIG = TrainingConfig(epochs=150, batch_size=50, hidden=(64,))
LR_RANGE = (0.018, 0.022)
TOLERANCE = 0.1
DATA = make_linear(k=3, n_features=12, n_samples=400, seed=0)
HEARTBEAT_INTERVAL = 1

# What the tests read back: the FLOP count and converged width a trial saw when it started.
SEEN_FLOPS = "test_flops_at_start"
SEEN_CONVERGED = "test_converged_at_start"


def make_storage(url: str, *, grace_period: int) -> optuna.storages.RDBStorage:
    """The package's heartbeat storage, with a heartbeat short enough for a test."""
    return optuna_sosae.heartbeat_storage(
        url, heartbeat_interval=HEARTBEAT_INTERVAL, grace_period=grace_period
    )


def make_study(url: str, study_name: str, *, grace_period: int, seed: int) -> optuna.Study:
    return optuna.create_study(
        study_name=study_name,
        storage=make_storage(url, grace_period=grace_period),
        sampler=optuna_sosae.SOSAESampler("latent_dim", seed=seed),
        pruner=optuna_sosae.SOSAEPruner(),
        load_if_exists=True,
    )


def make_objective(sleep: float = 0.0) -> Any:
    """The objective; ``sleep`` seconds per epoch make a probe slow enough to be killed."""

    def objective(trial: optuna.Trial) -> float:
        system_attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
        trial.set_user_attr(SEEN_FLOPS, trial.user_attrs.get("flops"))
        trial.set_user_attr(SEEN_CONVERGED, system_attrs.get("sosae:converged_width"))

        lr = trial.suggest_float("lr", *LR_RANGE)
        width = trial.suggest_int("latent_dim", 1, MAX_DIM)
        bridges: list[optuna_sosae.SOSAEBridge] = []

        def make_bridge(model: Any) -> optuna_sosae.SOSAEBridge:
            bridges.append(
                optuna_sosae.SOSAEBridge(
                    trial,
                    decoder_weight=model.decoder_input.weight,
                    baseline_loss=DATA.baseline_loss,
                    tolerance=TOLERANCE,
                    write_every=1 if sleep else 10,
                )
            )
            return bridges[-1]

        def on_epoch(epoch: int, val_loss: float) -> None:
            time.sleep(sleep)

        config = TrainingConfig(
            epochs=CONFIG.epochs, batch_size=CONFIG.batch_size, lr=lr, hidden=CONFIG.hidden
        )
        result = train(
            DATA, width, config, seed=trial.number, make_bridge=make_bridge, on_epoch=on_epoch
        )
        bridges[-1].finish()
        return result.val_loss

    return objective


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("storage")
    parser.add_argument("study_name")
    parser.add_argument("--n-trials", type=int, default=3)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--grace", type=int, default=30)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    study = make_study(args.storage, args.study_name, grace_period=args.grace, seed=args.seed)
    numbers: list[int] = []
    study.optimize(
        make_objective(args.sleep),
        n_trials=args.n_trials,
        callbacks=[lambda study, trial: numbers.append(trial.number)],
    )
    print(json.dumps({"latent_dim": optuna_sosae.tuned_latent_dim(study), "trials": numbers}))


if __name__ == "__main__":
    main()
