"""optuna-sosae: tune an autoencoder's latent width in one Optuna trial with SOSAE."""

from __future__ import annotations

from optuna_sosae._attrs import flops_total
from optuna_sosae._attrs import tuned_latent_dim
from optuna_sosae._bridge import SOSAEBridge
from optuna_sosae._flops import FlopMeter
from optuna_sosae._flops import count_flops
from optuna_sosae._penalty import SOSAEPenalty
from optuna_sosae._penalty import active_width
from optuna_sosae._penalty import position_weights
from optuna_sosae._penalty import width_within_tolerance
from optuna_sosae._pruner import SOSAEPruner
from optuna_sosae._sampler import NoConvergedWidthError
from optuna_sosae._sampler import SOSAESampler
from optuna_sosae._storage import heartbeat_storage
from optuna_sosae._truncate import truncate_consumer
from optuna_sosae._truncate import truncate_producer


__version__ = "0.1.0"

__all__ = [
    "FlopMeter",
    "NoConvergedWidthError",
    "SOSAEBridge",
    "SOSAEPenalty",
    "SOSAEPruner",
    "SOSAESampler",
    "active_width",
    "count_flops",
    "flops_total",
    "heartbeat_storage",
    "position_weights",
    "truncate_consumer",
    "truncate_producer",
    "tuned_latent_dim",
    "width_within_tolerance",
]
