"""The SOSAE penalty and the width it lets us read off the latent code.

The penalty charges each latent unit for its activity, and charges more the further back the
unit sits in the latent vector. Training under it moves the useful features to the front and
silences the tail, which can then be cut off. This module holds the penalty itself and the two
rules that read a width from a trained model.
"""

from __future__ import annotations

from collections.abc import Callable
import math
from typing import Literal

import torch


WeightKind = Literal["power", "exponential"]


def position_weights(
    width: int,
    *,
    kind: WeightKind = "power",
    beta: float = 0.1,
    gamma: float = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Return the weight of each latent position, growing with the index.

    Args:
        width:
            Number of latent units.
        kind:
            ``"power"`` gives ``(1 + i) ** gamma``; ``"exponential"`` gives ``(1 + beta) ** i``.
        beta:
            Growth rate of the exponential weight.
        gamma:
            Exponent of the power weight.
        device:
            Device of the returned tensor.
        dtype:
            Floating point type of the returned tensor.

    Returns:
        A tensor of shape ``[width]`` whose first entry is 1.
    """
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width!r}.")
    index = torch.arange(width, device=device, dtype=dtype)
    if kind == "power":
        if gamma < 0:
            raise ValueError(f"gamma must be non-negative, got {gamma!r}.")
        return (1.0 + index) ** gamma
    if kind == "exponential":
        if beta < 0:
            raise ValueError(f"beta must be non-negative, got {beta!r}.")
        # Computed in log space so that a long latent vector does not overflow float32.
        return torch.exp(index * math.log1p(beta))
    raise ValueError(f"kind must be 'power' or 'exponential', got {kind!r}.")


class SOSAEPenalty:
    """Position-weighted, rescaling-proof sparsity penalty on a latent code.

    For a batch of latent activations ``h`` of shape ``[batch, width]`` the penalty is::

        strength * mean_over_batch( sum_i w(i) * |h_i| * ||W[:, i]|| )

    where ``w`` grows with the position ``i`` (see :func:`position_weights`) and ``W`` is the
    weight matrix of the layer that consumes the latent code (the decoder's first layer).

    Why the decoder column norm: a plain L1 penalty on ``h`` can be dodged by shrinking ``h``
    and growing the decoder weights by the same factor, which leaves the reconstruction
    unchanged and drives the penalty towards zero without silencing any unit. The product
    ``|h_i| * ||W[:, i]||`` is the size of unit ``i``'s contribution to the next layer and is
    unchanged by that rescaling, so the only way to lower it is to stop using the unit.
    ``tests/test_penalty.py`` shows the plain penalty being dodged and this one holding.

    Why the power weight by default: with the exponential weight ``(1 + beta) ** i`` the ratio
    between the last and the first position depends on the width (a width-64 probe at
    ``beta=0.1`` charges its last unit 400 times its first), so a strength that works at one
    generous width is wrong at another. The power weight ``(1 + i) ** gamma`` with ``gamma=1``
    grows gently and evenly. Measured with the adaptive probe (``python
    benchmarks/penalty_weights.py``, seeds 0-2): the power weight finds 5, 5, 5 on the linear
    data of dimension 5 and 31, 29, 26 on digits (grid search: 25); the exponential weight at
    ``beta=0.1`` finds 6, 5, 5 and 32, 31, 31, and at ``beta=0.03`` 7, 9, 8 and 38, 41, 40.

    Args:
        strength:
            Multiplier of the penalty. The penalty is added to a reconstruction loss, so the
            right scale depends on the data; :class:`~optuna_sosae.SOSAEBridge` sets it relative
            to the data's variance.
        kind:
            ``"power"`` (default) or ``"exponential"``.
        beta:
            Growth rate for the exponential weight.
        gamma:
            Exponent for the power weight.
    """

    def __init__(
        self,
        strength: float,
        *,
        kind: WeightKind = "power",
        beta: float = 0.1,
        gamma: float = 1.0,
    ) -> None:
        if not math.isfinite(strength) or strength < 0:
            raise ValueError(f"strength must be a finite non-negative number, got {strength!r}.")
        self.strength = strength
        self.kind: WeightKind = kind
        self.beta = beta
        self.gamma = gamma
        # Validate the weight settings now rather than on the first batch.
        position_weights(1, kind=kind, beta=beta, gamma=gamma)
        self._weights: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}

    def weights(self, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (width, device, dtype)
        if key not in self._weights:
            self._weights[key] = position_weights(
                width, kind=self.kind, beta=self.beta, gamma=self.gamma, device=device, dtype=dtype
            )
        return self._weights[key]

    def __call__(
        self, latent: torch.Tensor, decoder_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the penalty for a batch of latent codes.

        Args:
            latent:
                Latent activations of shape ``[batch, width]``.
            decoder_weight:
                Weight of the layer consuming the latent code, shape ``[out, width]`` as in
                :class:`torch.nn.Linear`. Without it the penalty is a plain weighted L1 and can
                be dodged by rescaling.
        """
        if latent.dim() != 2:
            raise ValueError(f"latent must have shape [batch, width], got {tuple(latent.shape)}.")
        width = latent.shape[1]
        activity = latent.abs().mean(dim=0)
        if decoder_weight is not None:
            if decoder_weight.dim() != 2 or decoder_weight.shape[1] != width:
                raise ValueError(
                    f"decoder_weight must have shape [out, {width}], "
                    f"got {tuple(decoder_weight.shape)}."
                )
            activity = activity * decoder_weight.norm(dim=0)
        weights = self.weights(width, latent.device, latent.dtype)
        return self.strength * (weights * activity).sum()


def unit_activity(
    latent: torch.Tensor, decoder_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean absolute contribution of each latent unit over a batch, shape ``[width]``.

    With ``decoder_weight`` each unit's mean ``|h_i|`` is multiplied by the norm of its decoder
    column, so that the measure, like the penalty, cannot be changed by rescaling.
    """
    activity = latent.detach().abs().mean(dim=0)
    if decoder_weight is not None:
        activity = activity * decoder_weight.detach().norm(dim=0)
    return activity


def active_width(
    latent: torch.Tensor,
    decoder_weight: torch.Tensor | None = None,
    *,
    threshold: float = 0.05,
) -> int:
    """Number of leading latent units that carry signal.

    The rule: take each unit's mean absolute contribution on the given (validation) batch, see
    :func:`unit_activity`; the active width is the position of the last unit whose contribution
    exceeds ``threshold`` times the strongest unit's, plus one. Units before that position count
    even if they are weak themselves, because cutting the tail keeps a prefix. A code that is
    silent everywhere has width 0.

    Args:
        latent:
            Latent activations of shape ``[batch, width]``, on validation data.
        decoder_weight:
            Weight of the layer consuming the latent code; recommended, see above.
        threshold:
            Relative level, in ``(0, 1)``, below which a unit counts as silent.
    """
    return width_of_activity(unit_activity(latent, decoder_weight), threshold=threshold)


def width_of_activity(activity: torch.Tensor, *, threshold: float = 0.05) -> int:
    """:func:`active_width` of per-unit activities already computed by :func:`unit_activity`."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}.")
    strongest = float(activity.max()) if activity.numel() else 0.0
    if not math.isfinite(strongest) or strongest <= 0.0:
        return 0
    alive = torch.nonzero(activity > threshold * strongest).flatten()
    return int(alive[-1]) + 1 if alive.numel() else 0


def width_within_tolerance(
    truncated_loss: Callable[[int], float],
    *,
    upper: int,
    baseline_loss: float,
    tolerance: float,
) -> int:
    """Smallest prefix width whose loss is within ``tolerance`` of the full code's.

    The criterion, shared by every method in this package: a width ``d`` is good enough when

        loss(d) <= loss(upper) + tolerance * baseline_loss

    where ``baseline_loss`` is the loss of predicting the training mean for every sample (what a
    width of 0 achieves). Dividing by ``baseline_loss`` turns losses into fractions of the data's
    variance, so ``tolerance`` reads as "the share of explained variance the user will give up
    for a smaller width": 0.02 keeps all but two percent of what the full width explains. The
    rule is scale-free and does not punish a full-width model for fitting noise, which a
    ratio of losses would.

    ``truncated_loss(d)`` must give the loss with the latent code cut to its first ``d``
    units; it is assumed to fall as ``d`` grows, which the SOSAE ordering makes true in
    practice, and is evaluated at ``O(log upper)`` points by bisection.
    """
    if upper < 1:
        raise ValueError(f"upper must be at least 1, got {upper!r}.")
    if tolerance < 0 or not math.isfinite(tolerance):
        raise ValueError(f"tolerance must be a finite non-negative number, got {tolerance!r}.")
    target = truncated_loss(upper) + tolerance * baseline_loss
    low, high = 0, upper  # loss(high) <= target always holds; loss(low) may not.
    if truncated_loss(0) <= target:
        return 0
    while high - low > 1:
        middle = (low + high) // 2
        if truncated_loss(middle) <= target:
            high = middle
        else:
            low = middle
    return high
