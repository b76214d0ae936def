from __future__ import annotations

import logging

import optuna
import pytest
import torch


@pytest.fixture(autouse=True)
def _quiet_and_deterministic() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna_sosae").setLevel(logging.INFO)
    torch.set_num_threads(1)
