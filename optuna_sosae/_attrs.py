"""Names of what optuna-sosae stores in an Optuna study, and the reads derived from them.

Values meant for people (shown by optuna-dashboard) are user attributes under short plain
names; values the code relies on are system attributes under ``sosae:`` keys. Everything that
several workers must agree on is derived from these stored values, never kept in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from optuna.trial import TrialState


if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna
    from optuna.trial import FrozenTrial


# Trial user attributes (for people).
FLOPS = "flops"
ROLE = "sosae_role"
WIDTH = "sosae_width"
WIDTHS = "sosae_widths"

# Study user attributes (for people).
FLOPS_TOTAL = "flops_total"
LATENT_DIM = "sosae_latent_dim"

# System attributes (for the code).
SYS_ROLE = "sosae:role"
SYS_CONVERGED = "sosae:converged_width"
SYS_DECIDED = "sosae:decided_width"
SYS_OUTCOME = "sosae:outcome"
SYS_TRAJECTORY = "sosae:trajectory"
SYS_LAST_LOSS = "sosae:last_val_loss"

PROBE = "probe"
TUNED = "tuned"
FIXED = "fixed"
SUPERSEDED = "superseded"

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def trial_flops(trial: FrozenTrial) -> int:
    value = trial.user_attrs.get(FLOPS, 0)
    return int(value) if isinstance(value, (int, float)) else 0


def sum_flops(trials: Sequence[FrozenTrial]) -> int:
    """Sum of the ``flops`` user attribute over the given trials."""
    return sum(trial_flops(t) for t in trials)


def flops_total(study: optuna.Study) -> int:
    """FLOPs spent by every trial of the study, read fresh from the storage.

    The study's ``flops_total`` user attribute is refreshed from the same sum whenever a trial
    ends; this function does not depend on that refresh.
    """
    return sum_flops(study.get_trials(deepcopy=False))


def converged_probes(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Finished probes that recorded a converged width, the first to finish first."""
    probes = [
        t
        for t in trials
        if t.state in _FINISHED and isinstance(t.system_attrs.get(SYS_CONVERGED), int)
    ]
    return sorted(probes, key=_finish_order)


def _finish_order(trial: FrozenTrial) -> tuple[Any, int]:
    # datetime_complete is set by the storage together with the final state.
    return (trial.datetime_complete or trial.datetime_start, trial.number)


def decided_width(trials: Sequence[FrozenTrial]) -> int | None:
    """The tuned width: that of the first probe to finish with a converged width."""
    probes = converged_probes(trials)
    return int(probes[0].system_attrs[SYS_CONVERGED]) if probes else None


def tuned_latent_dim(study: optuna.Study) -> int | None:
    """The latent width the SOSAE probe converged to, or ``None`` before any probe has.

    Reads the study's trials from the storage, so it works from any process that loads the
    study, with or without a :class:`~optuna_sosae.SOSAESampler`.
    """
    return decided_width(study.get_trials(deepcopy=False))
