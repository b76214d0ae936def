"""What optuna-sosae shows in optuna-dashboard: saved figures and a study note.

optuna-dashboard is an optional dependency (``pip install optuna-sosae[dashboard]``); without
it these functions log that nothing was saved and return ``False``.
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
import re
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go


_logger = logging.getLogger(__name__)


def dashboard_available() -> bool:
    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        return False
    return True


def _graph_id(name: str) -> str:
    # The dashboard accepts ids of letters, digits, '-' and '_'; a stable id per name means a
    # figure saved again replaces the old one instead of piling up.
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:64] or "figure"


def publish(
    study: optuna.Study,
    *,
    figures: Mapping[str, go.Figure] | None = None,
    note: str | None = None,
) -> bool:
    """Save plotly figures and a markdown note to the study for optuna-dashboard.

    Figures are stored in the study's system attributes in chunks, and the dashboard re-reads
    them often, so each is saved with the plain ``"none"`` template: plotly's default
    template alone adds several kB per figure.

    Args:
        study:
            The study to annotate.
        figures:
            Figures by name; a figure saved again under the same name replaces the old one.
        note:
            Markdown shown as the study's note.

    Returns:
        Whether optuna-dashboard was available to save them.
    """
    if not dashboard_available():
        _logger.info("optuna-dashboard is not installed; no figures or note saved.")
        return False
    from optuna_dashboard import save_note
    from optuna_dashboard import save_plotly_graph_object

    for name, figure in (figures or {}).items():
        figure.update_layout(template="none")
        save_plotly_graph_object(study, figure, graph_object_id=_graph_id(name))
    if note is not None:
        save_note(study, note)
    return True
