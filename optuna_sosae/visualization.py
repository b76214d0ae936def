"""Figures of a comparison (see :mod:`optuna_sosae.compare`) and its self-contained HTML report.

Three plotly figures tell the story of ``optuna-sosae compare``:

- validation loss against width: grid's measured curve, the criterion's target, and the width
  each method chose;
- the best width found against the FLOPs spent, one line per method;
- the SOSAE probe's active width, epoch by epoch.

:func:`plot_width_trajectory` draws the probes of any SOSAE study from its storage; ``tune``
saves it to the study for optuna-dashboard.

:func:`comparison_figures` builds all three, :func:`report_html` puts them and the result
table in one HTML page that carries plotly.js inside it (it opens offline), and
:func:`publish_comparison` saves them to every study of the comparison for optuna-dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
import html
import logging
from typing import TYPE_CHECKING

import plotly.graph_objects as go
import plotly.io as pio

from optuna_sosae import _attrs
from optuna_sosae.compare import check_targets
from optuna_sosae.compare import result_rows
from optuna_sosae.dashboard import publish


if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from optuna_sosae.compare import Comparison


_logger = logging.getLogger(__name__)

# One colour per method, the same in every figure.
COLORS = {"sosae": "#d62728", "grid": "#1f77b4", "tpe": "#2ca02c"}
SYMBOLS = {"sosae": "star", "grid": "circle", "tpe": "diamond"}


def plot_loss_vs_width(
    curve: Mapping[int, float],
    picks: Mapping[str, int | None],
    *,
    target: float | None = None,
    losses: Mapping[str, float | None] | None = None,
) -> go.Figure:
    """Validation loss against latent width, with each method's chosen width marked.

    Args:
        curve:
            Grid search's validation loss at each width it trained.
        picks:
            The width each method chose, by method name (``None``: it chose none).
        target:
            The criterion's loss target, drawn as a dashed line.
        losses:
            A loss to place a pick at when its width is not on the curve (for example the mean
            of the method's final models); picks on the curve sit on it.
    """
    figure = go.Figure()
    widths = sorted(curve)
    figure.add_trace(
        go.Scatter(
            x=widths,
            y=[curve[w] for w in widths],
            mode="lines+markers",
            name="grid: val loss at each width",
            line={"color": COLORS["grid"]},
            marker={"size": 4},
        )
    )
    if target is not None:
        figure.add_hline(
            y=target,
            line_dash="dash",
            line_color="gray",
            annotation_text="criterion: full-width loss + tolerance x baseline",
        )
    for method, width in picks.items():
        if width is None:
            continue
        loss = curve.get(width)
        if loss is None and losses is not None:
            loss = losses.get(method)
        if loss is None:
            continue
        figure.add_trace(
            go.Scatter(
                x=[width],
                y=[loss],
                mode="markers",
                name=f"{method} picks {width}",
                marker={
                    "color": COLORS.get(method, "black"),
                    "symbol": SYMBOLS.get(method, "x"),
                    "size": 14,
                    "line": {"width": 1, "color": "black"},
                },
            )
        )
    figure.update_layout(
        title="Validation loss against latent width",
        xaxis_title="latent width",
        yaxis_title="validation MSE",
        yaxis_type="log",
    )
    return figure


def plot_width_vs_flops(
    histories: Mapping[str, Sequence[tuple[int, int | None]]],
    *,
    reference_width: int | None = None,
) -> go.Figure:
    """Best width found so far against the FLOPs spent, one line per method.

    For grid and TPE a point follows each trial: the smallest width so far that meets the
    criterion (none until one does). For SOSAE a point follows each probe epoch (the probe's
    active width) and then the tuned trial; its FLOPs per epoch are the probe's total divided
    evenly, since the probe's model keeps its shape.

    Args:
        histories:
            By method, ``(cumulative FLOPs, best width so far or None)`` pairs.
        reference_width:
            Grid's answer, drawn as a dashed line.
    """
    figure = go.Figure()
    for method, points in histories.items():
        shown = [(flops, width) for flops, width in points if width is not None]
        if not shown:
            continue
        figure.add_trace(
            go.Scatter(
                x=[flops for flops, _ in shown],
                y=[width for _, width in shown],
                mode="lines+markers",
                line_shape="hv",
                name=method,
                line={"color": COLORS.get(method)},
                marker={"symbol": SYMBOLS.get(method, "circle"), "size": 6},
            )
        )
    _mark_grid_answer(figure, reference_width)
    figure.update_layout(
        title="Best width so far against FLOPs spent",
        xaxis_title="FLOPs spent (tuning, then SOSAE's tuned trial)",
        yaxis_title="latent width",
        xaxis_type="log",
    )
    return figure


def plot_probe_trajectory(
    trajectory: Sequence[Sequence[int]],
    *,
    reference_width: int | None = None,
    max_dim: int | None = None,
) -> go.Figure:
    """The SOSAE probe's active width after each epoch.

    Args:
        trajectory:
            ``[epoch, width]`` pairs at each change, as in the probe's ``sosae_widths`` user
            attribute. The last pair's width holds until the probe ended.
        reference_width:
            Grid's answer, drawn as a dashed line.
        max_dim:
            The generous width the probe started from.
    """
    figure = go.Figure()
    if trajectory:
        points = [(int(epoch), int(width)) for epoch, width in trajectory]
        figure.add_trace(_step_trace(points, "probe's active width", COLORS["sosae"]))
    _mark_grid_answer(figure, reference_width)
    figure.update_layout(
        title="SOSAE probe: active latent width by epoch",
        xaxis_title="epoch",
        yaxis_title="active width",
        yaxis_range=[0, (max_dim or 0) + 1] if max_dim else None,
    )
    return figure


def plot_width_trajectory(study: optuna.Study) -> go.Figure:
    """Plot how the active latent width of each SOSAE probe shrank, epoch by epoch.

    Each probe trial stores its trajectory in the ``sosae_widths`` user attribute as
    ``[epoch, width]`` pairs at each change of width. The figure draws it as a step line from
    the generous starting width down to the width where the probe settled, and marks the
    study's tuned width (``sosae_latent_dim``) with a dashed line once a probe has converged.

    Args:
        study:
            A study written by :class:`~optuna_sosae.SOSAESampler`, for example by
            ``optuna-sosae tune``.

    Returns:
        A :class:`plotly.graph_objects.Figure`; without any probe it has no traces and its
        title says so.

    Example:

        .. code-block:: python

            import optuna
            from optuna_sosae.visualization import plot_width_trajectory

            study = optuna.load_study(
                study_name="sosae-digits", storage="sqlite:///optuna-sosae.db"
            )
            plot_width_trajectory(study).show()
    """
    trials = study.get_trials(deepcopy=False)
    probes = [t for t in trials if t.user_attrs.get(_attrs.ROLE) == _attrs.PROBE]
    figure = go.Figure()
    for trial in probes:
        points = _trajectory_points(trial)
        if not points:
            continue
        figure.add_trace(_step_trace(points, f"probe trial {trial.number}"))

    tuned = _attrs.decided_width(trials)
    if tuned is not None:
        figure.add_hline(
            y=tuned,
            line={"dash": "dash", "color": "gray"},
            annotation_text=f"tuned width {tuned}",
            annotation_position="bottom right",
        )

    title = "SOSAE probe: active latent width per epoch"
    if not figure.data:
        title = "SOSAE probe: no width trajectory recorded yet"
    figure.update_layout(
        title=title,
        xaxis_title="epoch",
        yaxis_title="active latent width",
        yaxis_rangemode="tozero",
        showlegend=len(figure.data) > 1,
    )
    return figure


def _trajectory_points(trial: FrozenTrial) -> list[tuple[int, int]]:
    # The stored trajectory lists only the epochs where the width changed; the step line must
    # run on to the probe's last epoch, which the per-epoch record in the system attributes
    # gives (its length), so that a width held for many epochs shows as a long flat run.
    compact = trial.user_attrs.get(_attrs.WIDTHS)
    if not isinstance(compact, list) or not compact:
        return []
    points = [(int(epoch), int(width)) for epoch, width in compact]
    record = trial.system_attrs.get(_attrs.SYS_TRAJECTORY)
    last_epoch = len(record[0]) if isinstance(record, list) and record else points[-1][0]
    if last_epoch > points[-1][0]:
        points.append((last_epoch, points[-1][1]))
    return points


def _mark_grid_answer(figure: go.Figure, reference_width: int | None) -> None:
    # Grid search's answer under the criterion, the reference every method is judged by.
    if reference_width is not None:
        figure.add_hline(
            y=reference_width,
            line_dash="dash",
            line_color="gray",
            annotation_text=f"grid's answer: {reference_width}",
        )


def _step_trace(
    points: Sequence[tuple[int, int]], name: str, color: str | None = None
) -> go.Scatter:
    # A width holds from the epoch it was read until the next change: a step line.
    return go.Scatter(
        x=[epoch for epoch, _ in points],
        y=[width for _, width in points],
        mode="lines+markers",
        line={"shape": "hv", "color": color},
        name=name,
    )


def comparison_figures(comparison: Comparison) -> dict[str, go.Figure]:
    """The three figures of a comparison, by a short name."""
    picks = {name: result.latent_dim for name, result in comparison.methods.items()}
    losses = {name: result.val_loss for name, result in comparison.methods.items()}
    return {
        "loss-vs-width": plot_loss_vs_width(
            comparison.curve, picks, target=comparison.target_loss, losses=losses
        ),
        "width-vs-flops": plot_width_vs_flops(
            comparison.histories, reference_width=comparison.reference_width
        ),
        "probe-width": plot_probe_trajectory(
            comparison.probe_widths,
            reference_width=comparison.reference_width,
            max_dim=comparison.max_dim,
        ),
    }


def _number(value: float | int | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def markdown_note(comparison: Comparison) -> str:
    """A short markdown summary for the studies' notes in optuna-dashboard."""
    rows = result_rows(comparison.to_dict())
    lines = [
        f"# SOSAE against {', '.join(n for n in comparison.methods if n != 'sosae') or 'nothing'}"
        f" on {comparison.dataset}",
        "",
        f"Criterion: the smallest width whose validation loss is at most the loss at width "
        f"{comparison.max_dim} plus {comparison.tolerance} x the baseline loss "
        f"({comparison.baseline_loss:.4g}, predicting the mean)"
        + (
            f"; target {comparison.target_loss:.4g}, grid's answer {comparison.reference_width}."
            if comparison.target_loss is not None
            else "."
        ),
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    lines += [
        "",
        "Tuning FLOPs: what finding the width cost. Total: until a model at that width exists. "
        "Loss and accuracy: mean of fresh models at the width "
        f"({comparison.settings.get('final_seeds')} seeds). TPE: the median of "
        f"{comparison.settings.get('tpe_seeds')} sampler seeds.",
    ]
    return "\n".join(lines)


def report_html(comparison: Comparison) -> str:
    """A self-contained HTML page: the result table, the targets and the three figures."""
    figures = comparison_figures(comparison)
    rows = result_rows(comparison.to_dict())
    table = ["<table>"]
    for number, row in enumerate(rows):
        cell = "th" if number == 0 else "td"
        table.append("<tr>" + "".join(f"<{cell}>{html.escape(c)}</{cell}>" for c in row) + "</tr>")
    table.append("</table>")

    targets = ["<table>", "<tr><th>target</th><th>wanted</th><th>measured</th><th>met</th></tr>"]
    for check in check_targets(comparison):
        met = {True: "yes", False: "no", None: "n/a"}[check["met"]]
        targets.append(
            f"<tr><td>{html.escape(check['name'])}</td><td>{html.escape(check['target'])}</td>"
            f"<td>{_number(check['measured'], '.3g')}</td><td>{met}</td></tr>"
        )
    targets.append("</table>")

    plots = []
    for index, figure in enumerate(figures.values()):
        plots.append(
            pio.to_html(figure, include_plotlyjs=index == 0, full_html=False, default_width="100%")
        )
    title = f"optuna-sosae compare: {comparison.dataset}"
    note = html.escape(markdown_note(comparison).splitlines()[2])
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style>",
            "</head><body>",
            f"<h1>{html.escape(title)}</h1>",
            f"<p>{note}</p>",
            *table,
            "<h2>Targets</h2>",
            *targets,
            *plots,
            "</body></html>",
        ]
    )


def publish_comparison(comparison: Comparison, storage: str | optuna.storages.BaseStorage) -> bool:
    """Save the figures and a note to every study of the comparison for optuna-dashboard.

    Returns:
        Whether optuna-dashboard was installed to save them.
    """
    import optuna

    figures = comparison_figures(comparison)
    note = markdown_note(comparison)
    saved = False
    for name in comparison.settings.get("studies", []):
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            _logger.warning("Study %r of the comparison is missing; nothing saved to it.", name)
            continue
        saved = publish(study, figures=figures, note=note) or saved
    return saved
