"""The ready-made training loop and objective used by the CLI and the comparison.

The loop is written out plainly: it is also the reference for users who write their own
(see ``examples/own_training_loop.py``). Every method, SOSAE and the baselines, trains through
:func:`train`, so budgets and FLOP counts are comparable.
"""

from __future__ import annotations

from collections.abc import Callable
import copy
import dataclasses
import logging
import math
from typing import Any

import numpy as np
import optuna
import torch

from optuna_sosae._bridge import SOSAEBridge
from optuna_sosae._flops import FlopMeter
from optuna_sosae.data import Dataset
from optuna_sosae.models import AutoencoderConfig
from optuna_sosae.models import MLPAutoencoder


_logger = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 0.05


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Budget and optimiser of one training run.

    Args:
        epochs:
            Epochs per trial (a probe may stop earlier, once its width has settled).
        batch_size:
            Minibatch size.
        lr:
            Adam learning rate.
        hidden:
            Hidden widths of the MLP autoencoder's encoder (mirrored in the decoder).
        device:
            ``"cpu"`` or ``"cuda"``.
    """

    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    hidden: tuple[int, ...] = (128,)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"epochs and batch_size must be positive, got {self.epochs}, {self.batch_size}."
            )
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr!r}.")


@dataclasses.dataclass
class TrainResult:
    """What one training run produced."""

    model: MLPAutoencoder
    val_loss: float
    epochs: int
    flops: int


def _tensors(dataset: Dataset, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.as_tensor(dataset.x_train, device=device),
        torch.as_tensor(dataset.x_val, device=device),
    )


def train(
    dataset: Dataset,
    width: int,
    config: TrainingConfig,
    *,
    seed: int = 0,
    make_bridge: Callable[[MLPAutoencoder], SOSAEBridge] | None = None,
    meter: FlopMeter | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    on_model: Callable[[MLPAutoencoder], None] | None = None,
    init: MLPAutoencoder | None = None,
) -> TrainResult:
    """Train an :class:`MLPAutoencoder` at ``width`` and return it with its validation loss.

    With ``make_bridge`` (inside an Optuna trial: it builds the trial's
    :class:`~optuna_sosae.SOSAEBridge` for the new model) the SOSAE penalty is added on probe
    trials and every step is counted by the bridge's FLOP meter; without it, steps are counted
    by ``meter`` (a new one if omitted). ``on_epoch(epoch, val_loss)`` is called after each
    epoch, and ``on_model(model)`` once with the new model before training (a probe ends with
    an exception, so this is how its model can be kept). With ``init`` training continues from
    a copy of that model (of latent width ``width``) instead of a fresh one.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x_train, x_val = _tensors(dataset, config.device)
    if init is None:
        model = MLPAutoencoder(AutoencoderConfig(dataset.n_features, width, config.hidden))
    else:
        if init.config.latent_dim != width:
            raise ValueError(f"init has latent width {init.config.latent_dim}, not {width}.")
        model = copy.deepcopy(init)
    model.to(config.device)
    if on_model is not None:
        on_model(model)
    bridge = make_bridge(model) if make_bridge is not None else None
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    counter = bridge.meter if bridge is not None else (meter or FlopMeter())

    def train_step(batch: torch.Tensor) -> None:
        latent = model.encode(batch)
        loss = torch.mean((model.decode(latent) - batch) ** 2)
        if bridge is not None:
            loss = loss + bridge.penalty(latent)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()

    def validate(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            latent = model.encode(batch)
            return torch.mean((model.decode(latent) - batch) ** 2), latent

    val_loss = math.inf
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=generator).to(config.device)
        for start in range(0, len(x_train), config.batch_size):
            counter.run(train_step, x_train[order[start : start + config.batch_size]])
        model.eval()
        loss, latent = counter.run(validate, x_val)
        val_loss = float(loss)
        if on_epoch is not None:
            on_epoch(epoch, val_loss)
        if bridge is not None:
            bridge.epoch_end(val_loss, latent)
        elif not math.isfinite(val_loss):
            break
    return TrainResult(model=model, val_loss=val_loss, epochs=epoch, flops=counter.total)


def latent_codes(model: MLPAutoencoder, x: np.ndarray) -> np.ndarray:
    device = next(model.parameters()).device
    with torch.no_grad():
        return model.encode(torch.as_tensor(x, device=device)).cpu().numpy()


def downstream_accuracy(model: MLPAutoencoder, dataset: Dataset, *, seed: int = 0) -> float | None:
    """Accuracy of a logistic-regression classifier trained on the latent codes.

    The classifier is fitted on the training split's codes (standardized) and scored on the
    validation split's. Returns ``None`` when the data set has no labels.
    """
    if dataset.y_train is None or dataset.y_val is None:
        return None
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed)
    )
    classifier.fit(latent_codes(model, dataset.x_train), dataset.y_train)
    return float(classifier.score(latent_codes(model, dataset.x_val), dataset.y_val))


class SOSAEObjective:
    """The objective that ``optuna-sosae tune`` optimises.

    Each trial suggests the latent width (and nothing else: the learning rate and the model
    family are fixed by ``config``), trains through :func:`train` with a
    :class:`~optuna_sosae.SOSAEBridge`, and returns the validation loss. Probe trials end
    through the bridge once their width has settled; tuned trials train from scratch at the
    tuned width for the full budget (see the README for why retraining was chosen over
    warm-starting the truncated probe). The models of finished tuned trials are kept in
    :attr:`models`, by trial number, for saving and for the downstream classifier.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        max_dim: int,
        config: TrainingConfig | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        latent_param: str = "latent_dim",
        seed: int = 0,
        bridge_options: dict[str, Any] | None = None,
        progress: Callable[[int, str, int, float], None] | None = None,
    ) -> None:
        if isinstance(max_dim, bool) or not isinstance(max_dim, int) or max_dim < 1:
            raise ValueError(f"max_dim must be an int of at least 1, got {max_dim!r}.")
        self.dataset = dataset
        self.max_dim = max_dim
        self.config = config or TrainingConfig()
        self.tolerance = tolerance
        self.latent_param = latent_param
        self.seed = seed
        self.bridge_options = bridge_options or {}
        self.progress = progress
        self.models: dict[int, MLPAutoencoder] = {}
        self.last_model: MLPAutoencoder | None = None

    def _keep(self, model: MLPAutoencoder) -> None:
        self.last_model = model

    def __call__(self, trial: optuna.Trial) -> float:
        width = trial.suggest_int(self.latent_param, 1, self.max_dim)

        bridges: list[SOSAEBridge] = []

        def make_bridge(model: MLPAutoencoder) -> SOSAEBridge:
            bridge = SOSAEBridge(
                trial,
                decoder_weight=model.decoder_input.weight,
                baseline_loss=self.dataset.baseline_loss,
                tolerance=self.tolerance,
                latent_param=self.latent_param,
                max_epochs=self.config.epochs,
                **self.bridge_options,
            )
            bridges.append(bridge)
            return bridge

        def on_epoch(epoch: int, val_loss: float) -> None:
            if self.progress is not None:
                role = str(trial.user_attrs.get("sosae_role", "trial"))
                self.progress(trial.number, role, epoch, val_loss)

        result = train(
            self.dataset,
            width,
            self.config,
            seed=self.seed + trial.number,
            make_bridge=make_bridge,
            on_epoch=on_epoch,
            on_model=self._keep,
        )
        # A probe that spent its budget without settling ends here, unconverged, instead of
        # completing with a value at the generous width.
        bridges[-1].finish()
        if not math.isfinite(result.val_loss):
            raise ValueError(
                f"trial {trial.number} at width {width} ended with validation loss "
                f"{result.val_loss}; lower the learning rate."
            )
        if trial.user_attrs.get("sosae_role") != "probe":
            # A probe that completes (its bridge had no epoch budget) is not a tuned model.
            self.models[trial.number] = result.model
        return result.val_loss
