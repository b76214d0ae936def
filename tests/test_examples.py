from __future__ import annotations

import os
from pathlib import Path
import re
import runpy
import subprocess
import sys

import pytest


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_own_training_loop_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "own_training_loop.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "tuned latent width: 5" in out
    assert "probe" in out and "tuned" in out


@pytest.mark.db
def test_multi_worker_example_agrees_on_one_width(postgres_url: str, study_name: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [sys.executable, str(EXAMPLES / "multi_worker_postgres.py"), postgres_url]
    result = subprocess.run(
        [*command, "--workers", "3", "--trials", "2", "--study-name", study_name],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"study {study_name!r}: tuned latent width 5" in out
    rows = re.findall(r"trial \d+: (\w+) +(\w+) .* width +(\d+)", out)
    assert len(rows) == 6
    assert {width for role, _, width in rows if role == "tuned"} == {"5"}
    assert all(state == "COMPLETE" for role, state, _ in rows if role == "tuned")
    totals = re.search(r"flops_total (\d+) \(sum over trials (\d+)\)", out)
    assert totals is not None, out
    total, summed = totals.groups()
    assert total == summed and int(total) > 0
