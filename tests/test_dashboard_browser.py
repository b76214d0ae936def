"""End to end: what ``optuna-sosae tune`` records, as optuna-dashboard shows it in Chromium.

The test runs the real CLI into a fresh SQLite storage, serves that storage with
optuna-dashboard on a free loopback port and reads the pages in headless Chromium through
Selenium. Without Chromium it is skipped, except under CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
import re
import subprocess
import sys
from types import ModuleType
from typing import Any

import optuna
import pytest


pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
INSTALL_HINT = (
    "headless Chromium is needed: apt-get install chromium chromium-driver "
    "(or set CHROMIUM and CHROMEDRIVER to their paths)"
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so this is an error, not a skip)")
    pytest.skip(reason)


def _browser_helpers() -> ModuleType:
    # The README's screenshot script holds the server and browser helpers; importing it here
    # keeps one copy of them and checks the script on every run.
    path = REPO / "examples" / "dashboard_screenshot.py"
    spec = importlib.util.spec_from_file_location("dashboard_screenshot", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cli(*args: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "optuna_sosae.cli", *args, "--json"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _browser() -> tuple[ModuleType, tuple[str, str]]:
    for module in ("selenium", "optuna_dashboard"):
        if importlib.util.find_spec(module) is None:
            _unavailable(f"{module} is not installed: pip install -e '.[dashboard,browser]'")
    helpers = _browser_helpers()
    paths = helpers.find_chromium()
    if paths is None:
        _unavailable(INSTALL_HINT)
    return helpers, paths


def _tune(storage_url: str) -> dict[str, Any]:
    # 20 epochs: the synthetic probe settles around epoch 17 at --max-dim 16.
    return _cli(
        "tune", "--dataset", "synthetic", "--max-dim", "16", "--epochs", "20",
        "--storage", storage_url,
    )  # fmt: skip


def test_dashboard_shows_what_tune_recorded(tmp_path: Path) -> None:
    helpers, paths = _browser()
    storage_url = f"sqlite:///{tmp_path / 'sosae.db'}"
    summary = _tune(storage_url)
    width = summary["latent_dim"]
    assert isinstance(width, int) and 1 <= width < 16

    study = optuna.load_study(study_name=summary["study_name"], storage=storage_url)
    study_id = study._study_id
    trials = study.get_trials(deepcopy=False)
    roles = {t.number: t.user_attrs["sosae_role"] for t in trials}
    assert sorted(roles.values()) == ["probe", "tuned"]
    probe = next(t for t in trials if roles[t.number] == "probe")
    stored_trajectory = [w for _, w in probe.user_attrs["sosae_widths"]]

    with helpers.serve_dashboard(storage_url) as base_url, helpers.open_chromium(*paths) as page:
        # Trial list with every trial open: each one's user attributes, FLOPs and role.
        numbers = ",".join(str(t.number) for t in trials)
        page.get(f"{base_url}/studies/{study_id}/trials?numbers={numbers}")
        for trial in trials:
            flops = trial.user_attrs["flops"]
            assert isinstance(flops, int) and flops > 0
            helpers.wait_for_text(page, f"flops {flops}")
            helpers.wait_for_text(page, f"sosae_role {roles[trial.number]}")
        helpers.wait_for_text(page, f"sosae_width {width}")

        # Study page: the width trajectory figure and the tuned width among the study's
        # attributes.
        page.get(f"{base_url}/studies/{study_id}")
        figure = helpers.wait_for_figure(page, "width-trajectory")
        drawn = page.execute_script(
            "const p = arguments[0];"
            "return {y: p.data[0].y, title: p.layout.title.text,"
            " lines: (p.layout.shapes || []).map(s => s.y0)};",
            figure,
        )
        assert drawn["y"][: len(stored_trajectory)] == stored_trajectory
        assert drawn["y"][0] == 16 and drawn["y"][-1] == width
        assert drawn["lines"] == [width]
        assert "active latent width" in drawn["title"]
        assert "active latent width" in figure.text
        helpers.wait_for_text(page, "Study User Attributes")
        body = page.find_element("tag name", "body").text
        assert re.search(rf"sosae_latent_dim\s+{width}\b", body), body[-500:]
        assert re.search(rf"flops_total\s+{summary['flops_total']}\b", body)

        # The note explains the result in words.
        page.get(f"{base_url}/studies/{study_id}/note")
        helpers.wait_for_text(page, f"SOSAE tuned latent width: {width} (of at most 16)")
        helpers.wait_for_text(page, "FLOPs to find the width")
        helpers.wait_for_text(page, "generous width of 16")

        shots = helpers.capture(page, base_url, study_id, tmp_path / "screenshots")

    for shot in shots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 10_000


def test_dashboard_shows_the_comparison_figures_and_note(tmp_path: Path) -> None:
    helpers, paths = _browser()
    storage_url = f"sqlite:///{tmp_path / 'compare.db'}"
    # A small comparison: 30 epochs let the synthetic probe settle at --max-dim 8.
    summary = _cli(
        "compare", "--dataset", "synthetic", "--max-dim", "8", "--epochs", "30",
        "--grid", "pow2", "--tpe-seeds", "1", "--tpe-budget", "3", "--final-seeds", "1",
        "--storage", storage_url,
    )  # fmt: skip
    studies = summary["settings"]["studies"]
    assert len(studies) == 3  # sosae, grid and one TPE run
    sosae_width = summary["methods"]["sosae"]["latent_dim"]

    with helpers.serve_dashboard(storage_url) as base_url, helpers.open_chromium(*paths) as page:
        for name in studies:
            study_id = optuna.load_study(study_name=name, storage=storage_url)._study_id
            page.get(f"{base_url}/studies/{study_id}")
            # Every study of the comparison carries the same three figures.
            for graph_id, title in (
                ("loss-vs-width", "loss"),
                ("width-vs-flops", "FLOPs"),
                ("probe-width", "probe"),
            ):
                figure = helpers.wait_for_figure(page, graph_id)
                assert title.lower() in figure.text.lower(), (name, graph_id, figure.text)
            page.get(f"{base_url}/studies/{study_id}/note")
            helpers.wait_for_text(page, "SOSAE against grid, tpe on synthetic")
            body = page.find_element("tag name", "body").text
            assert re.search(rf"sosae\s+{sosae_width}\b", body), body[:800]
