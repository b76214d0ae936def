"""Reference autoencoders."""

from __future__ import annotations

from collections.abc import Sequence
import copy
import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from optuna_sosae._truncate import truncate_consumer
from optuna_sosae._truncate import truncate_producer


@dataclasses.dataclass(frozen=True)
class AutoencoderConfig:
    """Shape of an :class:`MLPAutoencoder`.

    Args:
        in_features:
            Number of input (and output) features.
        latent_dim:
            Width of the latent code.
        hidden:
            Widths of the hidden layers of the encoder; the decoder mirrors them.
    """

    in_features: int
    latent_dim: int
    hidden: tuple[int, ...] = (128,)

    def __post_init__(self) -> None:
        for name in ("in_features", "latent_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must hold positive ints, got {self.hidden!r}.")


def _mlp(widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=False)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPAutoencoder(nn.Module):
    """Fully connected autoencoder with a linear latent layer.

    The encoder maps ``in_features -> hidden... -> latent_dim`` with ReLU between layers and no
    activation on the code; the decoder mirrors it. ``latent_layer`` produces the code and
    ``decoder_input`` consumes it: those are the two layers SOSAE truncates.
    """

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.in_features, *config.hidden, config.latent_dim]
        self.encoder = _mlp(widths)
        self.decoder = _mlp(widths[::-1])

    @property
    def latent_layer(self) -> nn.Linear:
        layer = self.encoder[-1]
        assert isinstance(layer, nn.Linear)
        return layer

    @property
    def decoder_input(self) -> nn.Linear:
        layer = self.decoder[0]
        assert isinstance(layer, nn.Linear)
        return layer

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        latent: torch.Tensor = self.encoder(x)
        return latent

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        output: torch.Tensor = self.decoder(latent)
        return output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def truncated(self, width: int) -> MLPAutoencoder:
        """Return a copy whose latent code keeps only its first ``width`` units."""
        cut = copy.deepcopy(self)
        cut.config = dataclasses.replace(self.config, latent_dim=width)
        cut.encoder[-1] = truncate_producer(self.latent_layer, width)
        cut.decoder[0] = truncate_consumer(self.decoder_input, width)
        return cut


def save_model(model: MLPAutoencoder, path: str | Path, **metadata: Any) -> None:
    """Save a model with its configuration; read it back with :func:`load_model`."""
    payload = {
        "format": "optuna-sosae-model/1",
        "config": dataclasses.asdict(model.config),
        "state_dict": model.state_dict(),
        "metadata": metadata,
    }
    torch.save(payload, Path(path))


def load_model(path: str | Path) -> tuple[MLPAutoencoder, dict[str, Any]]:
    """Load a model saved by :func:`save_model` (or ``optuna-sosae tune --output``).

    Returns:
        The model in eval mode and the metadata saved with it. From ``optuna-sosae tune
        --output`` that is the run's summary (width, FLOPs, validation loss, study name) plus
        ``preprocessing`` (in words) and ``input_offset`` / ``input_scale``: raw features
        reach the model as ``(x - input_offset) / input_scale``, per feature.

    Example:

        .. code-block:: python

            model, meta = load_model("model.pt")
            x = (x_raw - np.asarray(meta["input_offset"])) / np.asarray(meta["input_scale"])
            codes = model.encode(torch.as_tensor(x, dtype=torch.float32))
    """
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != "optuna-sosae-model/1":
        raise ValueError(f"{path} is not a model saved by optuna-sosae.")
    config = payload["config"]
    config["hidden"] = tuple(config["hidden"])
    model = MLPAutoencoder(AutoencoderConfig(**config))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, dict(payload["metadata"])
