"""The position weight of the SOSAE penalty: power against exponential, by the widths found.

Run: ``python benchmarks/penalty_weights.py`` (about a minute on 2 CPU cores). Each row is one
probe with the defaults of ``optuna-sosae tune`` except the position weight, on digits
(max-dim 64; grid search answers 25 under the default tolerance) and on the linear data with 5
factors (max-dim 32; the answer is 5), seeds 0-2.
"""

from __future__ import annotations

from typing import Any

import optuna
import torch

from optuna_sosae import SOSAEPruner
from optuna_sosae import SOSAESampler
from optuna_sosae.data import load_digits
from optuna_sosae.data import make_linear
from optuna_sosae.training import SOSAEObjective
from optuna_sosae.training import TrainingConfig


WEIGHTS: dict[str, dict[str, Any]] = {
    "power, gamma 1 (default)": {"weight": "power", "gamma": 1.0},
    "exponential, beta 0.1": {"weight": "exponential", "beta": 0.1},
    "exponential, beta 0.03": {"weight": "exponential", "beta": 0.03},
}


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    torch.set_num_threads(1)
    for label, options in WEIGHTS.items():
        for name, loader, max_dim in (("digits", load_digits, 64), ("linear", make_linear, 32)):
            found = []
            for seed in (0, 1, 2):
                study = optuna.create_study(sampler=SOSAESampler(seed=seed), pruner=SOSAEPruner())
                objective = SOSAEObjective(
                    loader(seed=seed),
                    max_dim=max_dim,
                    config=TrainingConfig(),
                    seed=seed,
                    bridge_options=options,
                )
                study.optimize(objective, n_trials=1)
                trial = study.trials[0]
                epochs = len(trial.system_attrs["sosae:trajectory"][0])
                found.append(f"{trial.system_attrs.get('sosae:converged_width')} ({epochs} ep)")
            print(f"{label:26} {name:7} widths by seed: {', '.join(found)}")


if __name__ == "__main__":
    main()
