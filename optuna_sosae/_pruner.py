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
    the same, its validation loss has sat near the loss budget (between half of it and 10%
    over it; see :class:`~optuna_sosae.SOSAEBridge`), which means the penalty is binding (a
    loss far below the budget leaves the penalty room to silence more units), and its weakest
    kept unit has kept at least ``fading`` times its highest relative activity in that window.
    That is where SOSAE saves compute: a probe stops as soon as the answer is known instead of
    running its whole budget.

    The last condition is there because a unit on its way out stays above the silence
    threshold for a while: without it, a probe on linear data of 5 factors settled at 6 while
    its sixth unit fell from 29% to 9% of the strongest unit's activity over the window (1 of
    15 learning rate and seed pairs, ``python benchmarks/intrinsic_dim.py --lr-sweep``).

    Trials that are not probes are judged by ``base_pruner`` (none by default) on the
    intermediate values the objective reports itself. The probe's width trajectory is never
    reported as an intermediate value, so a base pruner never mistakes it for the objective.

    Args:
        patience:
            Epochs the width must stay unchanged, with the loss within budget.
        fading:
            Share, in ``[0, 1)``, of its peak over the patience window that the weakest kept
            unit's relative activity must keep; 0 turns the condition off.
        base_pruner:
            Pruner for tuned trials, for example :class:`~optuna.pruners.MedianPruner`.
    """

    def __init__(
        self, *, patience: int = 8, fading: float = 0.5, base_pruner: BasePruner | None = None
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive int, got {patience!r}.")
        if isinstance(fading, bool) or not isinstance(fading, (int, float)) or not 0 <= fading < 1:
            raise ValueError(f"fading must be a number in [0, 1), got {fading!r}.")
        self.patience = patience
        self.fading = float(fading)
        self._base_pruner = base_pruner

    def settled(
        self,
        widths: Sequence[int],
        binding: Sequence[bool],
        upper: int,
        tail: Sequence[float] | None = None,
    ) -> bool:
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
            tail:
                For each epoch, the activity of the last active unit relative to the
                strongest unit's; without it the fading condition is not checked.
        """
        n = self.patience
        if len(widths) < n or len(binding) != len(widths):
            return False
        recent = widths[-n:]
        if not (
            all(binding[-n:]) and 0 < recent[0] < upper and all(w == recent[0] for w in recent)
        ):
            return False
        if tail is None or len(tail) != len(widths):
            return True
        return tail[-1] >= self.fading * max(tail[-n:])

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        if trial.system_attrs.get(_attrs.SYS_ROLE) == _attrs.PROBE:
            stored = trial.system_attrs.get(_attrs.SYS_TRAJECTORY)
            if not stored:
                return False
            # A record without the tail (three lists, as custom code may write) is judged
            # without the fading condition.
            widths, binding, upper, *rest = stored
            return self.settled(widths, binding, upper, rest[0] if rest else None)
        if self._base_pruner is None:
            return False
        return self._base_pruner.prune(study, trial)
