"""SOSAEPruner: ends a probe once its latent width has settled."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from optuna.pruners import BasePruner

from optuna_sosae import _attrs


if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial


class SOSAEPruner(BasePruner):
    """Pruner that ends a SOSAE probe once its latent width has settled.

    A probe has settled when, for ``patience`` consecutive epochs, its active width has stayed
    the same and its validation loss has sat near the loss budget (between half of it and 10%
    over it; see :class:`~optuna_sosae.SOSAEBridge`), which means the penalty is binding: a
    loss far below the budget leaves the penalty room to silence more units. That is where
    SOSAE saves compute: a probe stops as soon as the answer is known instead of running its
    whole budget.

    Trials that are not probes are judged by ``base_pruner`` (none by default) on the
    intermediate values the objective reports itself. The probe's width trajectory is never
    reported as an intermediate value, so a base pruner never mistakes it for the objective.

    Args:
        patience:
            Epochs the width must stay unchanged, with the loss within budget.
        base_pruner:
            Pruner for tuned trials, for example :class:`~optuna.pruners.MedianPruner`.
    """

    def __init__(self, *, patience: int = 8, base_pruner: BasePruner | None = None) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive int, got {patience!r}.")
        self.patience = patience
        self._base_pruner = base_pruner

    def settled(self, widths: Sequence[int], binding: Sequence[bool], upper: int) -> bool:
        """Whether a probe with this per-epoch width and budget history has settled.

        A probe still using every unit of its generous width has not shown that fewer
        suffice, so it has not settled however long its width stays there.

        Args:
            widths:
                Active width after each epoch.
            binding:
                For each epoch, whether the penalty was binding (see the class docstring).
            upper:
                The probe's generous width.
        """
        if len(widths) < self.patience or len(binding) != len(widths):
            return False
        recent = widths[-self.patience :]
        return (
            all(binding[-self.patience :])
            and 0 < recent[0] < upper
            and all(w == recent[0] for w in recent)
        )

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        if trial.system_attrs.get(_attrs.SYS_ROLE) == _attrs.PROBE:
            stored = trial.system_attrs.get(_attrs.SYS_TRAJECTORY)
            if not stored:
                return False
            widths, binding, upper = stored
            return self.settled(widths, binding, upper)
        if self._base_pruner is None:
            return False
        return self._base_pruner.prune(study, trial)
