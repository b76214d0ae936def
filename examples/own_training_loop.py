"""Tune the latent width of your own autoencoder with SOSAE, in a plain study.optimize.

Run: ``python examples/own_training_loop.py`` (about 10 seconds on a laptop CPU).

Trial 0 is the probe: it trains at the generous width (the upper bound of ``latent_dim``)
with the SOSAE penalty and ends as soon as the width has settled. Trial 1 and later are tuned
trials: they train at the width the probe found, while TPE tunes the learning rate.
"""

from __future__ import annotations

import optuna
import torch
from torch import nn

import optuna_sosae
from optuna_sosae.data import make_linear


data = make_linear(k=5, n_features=40, seed=0)  # 5 hidden factors in 40 features
x_train = torch.as_tensor(data.x_train)
x_val = torch.as_tensor(data.x_val)
EPOCHS = 60


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 5e-4, 5e-3, log=True)
    width = trial.suggest_int("latent_dim", 1, 32)

    encoder = nn.Sequential(nn.Linear(40, 128), nn.ReLU(), nn.Linear(128, width))
    decoder = nn.Sequential(nn.Linear(width, 128), nn.ReLU(), nn.Linear(128, 40))
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=lr)
    bridge = optuna_sosae.SOSAEBridge(
        trial,
        decoder_weight=decoder[0].weight,  # the layer that consumes the latent code
        baseline_loss=data.baseline_loss,  # validation MSE of predicting the mean
        max_epochs=EPOCHS,  # a probe still unsettled then ends with its last width
    )

    def train_step(batch: torch.Tensor) -> None:
        latent = encoder(batch)
        loss = torch.mean((decoder(latent) - batch) ** 2) + bridge.penalty(latent)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def validate(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            latent = encoder(batch)
            return torch.mean((decoder(latent) - batch) ** 2), latent

    for _ in range(EPOCHS):
        for batch in torch.split(x_train[torch.randperm(len(x_train))], 64):
            bridge.run(train_step, batch)  # runs the step and counts its FLOPs
        val_loss, val_latent = bridge.run(validate, x_val)
        # On the probe: adapts the penalty, reads the width, ends the trial once settled.
        bridge.epoch_end(float(val_loss), val_latent)
    return float(val_loss)


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        sampler=optuna_sosae.SOSAESampler("latent_dim", seed=0),
        pruner=optuna_sosae.SOSAEPruner(),
    )
    study.optimize(objective, n_trials=3)
    print("tuned latent width:", optuna_sosae.tuned_latent_dim(study))
    print("best params:", study.best_params)
    for trial in study.trials:
        print(
            f"trial {trial.number}: {trial.user_attrs['sosae_role']:6} "
            f"width {trial.params['latent_dim']:2}  {trial.state.name:8} "
            f"{trial.user_attrs['flops'] / 1e9:6.2f} GFLOPs"
        )
    print("FLOPs of the whole study:", study.user_attrs["flops_total"])
