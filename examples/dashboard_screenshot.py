"""Take the README's screenshot of optuna-dashboard on a study written by ``optuna-sosae tune``.

Run from the repository root (it takes a few minutes on a laptop CPU)::

    python examples/dashboard_screenshot.py

It runs ``optuna-sosae tune`` on the bundled digits data into a fresh SQLite file, serves that
storage with optuna-dashboard on a free loopback port, opens the study's page in headless
Chromium and saves ``docs/dashboard.png`` (the study page: the probe's width trajectory, the
study attributes) and ``docs/dashboard-note.png`` (the study's note). Pass ``--storage`` to
photograph a study you already have instead.

Needs the ``dashboard`` and ``browser`` extras and Debian's Chromium with its WebDriver
(``apt-get install chromium chromium-driver``); set ``CHROMIUM`` and ``CHROMEDRIVER`` to use
binaries elsewhere. The browser helpers below are also used by ``tests/test_dashboard_browser.py``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
import contextlib
import os
from pathlib import Path
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import WSGIServer
from wsgiref.simple_server import make_server


REPO = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = (
    "--headless",
    # Chromium refuses to start as root with its sandbox on, which is how CI containers run.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PAGE_TIMEOUT = 30.0


def find_chromium() -> tuple[str, str] | None:
    """Paths of the Chromium binary and its WebDriver, or ``None`` when either is missing."""
    browser = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    driver = (
        os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
    )
    if not (os.access(browser, os.X_OK) and os.access(driver, os.X_OK)):
        return None
    return browser, driver


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    # The dashboard's page fetches several API routes at once; one thread each keeps a slow
    # request from holding up the others.
    daemon_threads = True


@contextlib.contextmanager
def serve_dashboard(storage_url: str) -> Iterator[str]:
    """Serve optuna-dashboard on ``storage_url`` from a thread; yield its base URL."""
    import optuna_dashboard

    app = optuna_dashboard.wsgi(storage_url)
    # Port 0 lets the system pick a free port on the loopback interface only.
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/dashboard"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def open_chromium(
    browser: str, driver: str, *, width: int = 1400, height: int = 1100
) -> Iterator[Any]:
    """Start headless Chromium under Selenium with a throwaway profile; yield the driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="sosae-chromium-") as profile:
        options = Options()
        options.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        session = webdriver.Chrome(service=Service(driver), options=options)
        session.set_page_load_timeout(PAGE_TIMEOUT)
        try:
            yield session
        finally:
            session.quit()


def wait_for_text(session: Any, text: str, *, timeout: float = PAGE_TIMEOUT) -> None:
    """Wait until the page's visible text contains ``text``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(session, timeout).until(
        lambda s: text in s.find_element(By.TAG_NAME, "body").text,
        message=f"{text!r} did not appear on {session.current_url}",
    )


def wait_for_figure(session: Any, graph_id: str, *, timeout: float = PAGE_TIMEOUT) -> Any:
    """Wait until the saved figure ``graph_id`` is drawn; return its element."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    # optuna-dashboard draws each saved figure in a plotly div with this id.
    locator = (By.ID, f"user-defined-plot:{graph_id}")
    element = WebDriverWait(session, timeout).until(
        expected_conditions.visibility_of_element_located(locator),
        message=f"figure {graph_id!r} did not appear on {session.current_url}",
    )
    WebDriverWait(session, timeout).until(
        lambda s: element.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace"),
        message=f"figure {graph_id!r} was not drawn on {session.current_url}",
    )
    return element


def capture(session: Any, base_url: str, study_id: int, out_dir: Path) -> list[Path]:
    """Save screenshots of the study's page (scrolled to the width figure) and its note."""
    out_dir.mkdir(parents=True, exist_ok=True)
    session.get(f"{base_url}/studies/{study_id}")
    figure = wait_for_figure(session, "width-trajectory")
    wait_for_text(session, "Study User Attributes")
    # Scroll the figure to the top, then back by the height of the dashboard's fixed app bar,
    # so that the figure's title and the study attributes below it are both in the picture.
    session.execute_script(
        "arguments[0].scrollIntoView({block: 'start'}); window.scrollBy(0, -90);", figure
    )
    study_png = out_dir / "dashboard.png"
    session.save_screenshot(str(study_png))

    session.get(f"{base_url}/studies/{study_id}/note")
    wait_for_text(session, "SOSAE tuned latent width")
    # The note is short; a lower window leaves less empty card below it.
    size = session.get_window_size()
    session.set_window_size(size["width"], 800)
    note_png = out_dir / "dashboard-note.png"
    session.save_screenshot(str(note_png))
    session.set_window_size(size["width"], size["height"])
    return [study_png, note_png]


def run_tune(storage_url: str, *extra: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "optuna_sosae.cli", "tune", "--storage", storage_url]
    subprocess.run([*command, *extra], check=True, env=env, cwd=REPO)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--storage", help="photograph this storage's study instead of running tune first"
    )
    parser.add_argument("--study-name", default="sosae-digits", help="(default sosae-digits)")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="(default docs/)")
    args = parser.parse_args()

    paths = find_chromium()
    if paths is None:
        print("Chromium not found: apt-get install chromium chromium-driver", file=sys.stderr)
        return 1
    import optuna

    with tempfile.TemporaryDirectory(prefix="sosae-screenshot-") as scratch:
        storage_url = args.storage
        if storage_url is None:
            storage_url = f"sqlite:///{scratch}/optuna-sosae.db"
            run_tune(storage_url, "--study-name", args.study_name)
        study_id = optuna.storages.get_storage(storage_url).get_study_id_from_name(args.study_name)
        with serve_dashboard(storage_url) as base_url, open_chromium(*paths) as session:
            for path in capture(session, base_url, study_id, args.out):
                print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
