"""The gradient visualiser of q_rnn_and_grad as a student sees it: JupyterLab in a real (headless) Chromium.

The test serves a temporary copy of the built release folder, with the solution notebook of the fast build
in place of the blank one (outputs cleared), from a JupyterLab it starts on a free localhost port with a
token. Chromium (the Debian package; nothing is downloaded) is driven by Playwright: it opens the notebook,
runs the cells the visualiser needs and then the visualiser (checks, training and static figures are left
out to keep the test short), waits for the plot, changes controls, and checks that the plot is redrawn,
that the nonlinearity control is switched off for the LSTM and that no widget error is shown.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = "q_rnn_and_grad.ipynb"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDGET_ERRORS = ("Error displaying widget", "Error rendering", "Failed to load model class", "model not found")
SECONDS = 150  # the whole test stays well under this; each wait below has its own, shorter limit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def notebook_folder(fast_build: Path, target: Path) -> Path:
    """The release folder (check helper, public goldens, data) with the solution notebook, outputs cleared."""
    shutil.copytree(fast_build / "release" / "hw_rnn", target)
    notebook = json.loads((fast_build / "solutions" / "hw_rnn" / NOTEBOOK).read_text(encoding="utf-8"))
    notebook["metadata"].pop("widgets", None)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (target / NOTEBOOK).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def start_jupyterlab(root: Path, home: Path, port: int, token: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({
        "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "HW_FAST": "1", "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    })
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:  # CI and this machine's sessions run as root
        command.append("--allow-root")
    with open(home / "jupyterlab.log", "w") as log:  # the server keeps its own copy of the file
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"JupyterLab exited:\n{(home / 'jupyterlab.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2):
                return server
        except OSError:
            time.sleep(0.5)
    stop(server)
    raise RuntimeError(f"JupyterLab did not answer:\n{(home / 'jupyterlab.log').read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """Stop the server we started and its kernels (its own process group)."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)


# JavaScript run in the page through the application object JupyterLab exposes (expose_app_in_browser).
KERNEL_IDLE = """() => {
  const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext && panel.sessionContext.session
                 && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && !panel.sessionContext.isBusy;
}"""
# The cells the visualiser needs (set-up, the solutions it calls, its own code), then the visualiser itself.
NEEDED = ["hw_folder", "setup", "step_recorder", "rnn_layer", "regression_model", "generate_batch", "loss_fn",
          "gradient_norms", "lstm_layer", "visualiser_code", "visualiser_widget"]
RUN_CELLS = """async (gradeIds) => {
  const app = window.jupyterapp;
  const notebook = app.shell.currentWidget.content;
  const gradeId = cell => (cell.model.getMetadata('nbgrader') || {}).grade_id;
  const found = [];
  for (const wanted of gradeIds) {
    const index = notebook.widgets.findIndex(cell => gradeId(cell) === wanted);
    if (index < 0) { continue; }
    found.push(wanted);
    notebook.activeCellIndex = index;
    await notebook.scrollToItem(index, 'start');
    await app.commands.execute('notebook:run-cell');
  }
  return found;
}"""
VISUALISER_DONE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cell = panel.content.activeCell;
  return cell.model.executionCount !== null && panel.sessionContext.session.kernel.status === 'idle';
}"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed (Debian package `chromium`; "
                                                  ".ci/run installs it with apt-get)")
def test_visualiser_renders_and_responds_in_jupyterlab(fast_build, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    started = time.monotonic()
    root = notebook_folder(fast_build, tmp_path / "hw_rnn")
    home = tmp_path / "home"
    home.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    server = start_jupyterlab(root, home, port, token)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()  # empty: a fresh browser profile
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000})
            try:
                page = browser.pages[0] if browser.pages else browser.new_page()
                page.set_default_timeout(60_000)
                page.goto(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}")
                page.wait_for_function(KERNEL_IDLE, timeout=60_000, polling=250)
                assert page.evaluate(RUN_CELLS, NEEDED) == NEEDED, "a cell the visualiser needs is missing"
                page.wait_for_function(VISUALISER_DONE, timeout=60_000, polling=250)

                cell = page.locator(".jp-Notebook .jp-Cell.jp-mod-active")
                image = cell.locator("img.widget-image").first
                expect(image).to_be_visible(timeout=30_000)
                nonlinearity = cell.locator(".widget-dropdown", has_text="nonlinearity (RNN)").locator("select")
                layer = cell.locator(".widget-dropdown", has_text="layer").first.locator("select")
                expect(nonlinearity).to_be_enabled()
                page.screenshot(path=str(tmp_path / "visualiser-rnn.png"))

                first = image.get_attribute("src")
                nonlinearity.select_option("relu")
                expect(image).not_to_have_attribute("src", first, timeout=30_000)
                second = image.get_attribute("src")
                assert second and second != first

                layer.select_option("lstm")
                expect(image).not_to_have_attribute("src", second, timeout=30_000)
                expect(nonlinearity).to_be_disabled()
                page.screenshot(path=str(tmp_path / "visualiser-lstm.png"))

                for error in WIDGET_ERRORS:
                    assert error not in page.content(), f"the page shows {error!r}"
                assert cell.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
                assert cell.locator(".jp-RenderedText[data-mime-type*='error']").count() == 0
            finally:
                browser.close()
    finally:
        stop(server)
    assert time.monotonic() - started < SECONDS
