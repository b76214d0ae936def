from __future__ import annotations

from pathlib import Path
import runpy

import pytest


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_own_training_loop_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLES / "own_training_loop.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "tuned latent width: 5" in out
    assert "probe" in out and "tuned" in out
