"""The explorer notebook in a real browser: JupyterLab on 127.0.0.1 and headless Chromium (Playwright).

Run All twice in one kernel draws a complete picture each time and ends the "(computing)" label; a click on a
cell moves the cheese, and a new coefficient changes the edited field, with the table showing the numbers a
direct library call gives; the browser logs no error. Needs the system Chromium (``apt-get install -y
chromium``; Playwright's own browser download is not used) and the ``browser`` extra (playwright, jupyterlab),
which ``dev`` includes. The notebook runs from a temporary copy with ``MAZEINTERP_QUICK=1``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("the browser test needs the system Chromium: apt-get install -y chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright: the dev extra")
pytest.importorskip("jupyterlab", reason="the browser test needs JupyterLab: the dev extra")

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebooks" / "06_explorer.ipynb"
TIMEOUT_MS = 90_000  # one wait (a Run All of the quick notebook, a complete field) under a loaded CI machine
PICTURE = ".jp-OutputArea .explorer-picture"
PROGRESS = ".jp-OutputArea .explorer-progress"
TABLE = ".jp-OutputArea .explorer-probabilities"
CAPTION = ".jp-OutputArea .explorer-caption"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """JupyterLab serving a temporary copy of the notebook; → the notebook's URL (with its token), the copy."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    port, token, log = _free_port(), os.urandom(16).hex(), root / ".server.log"
    env = dict(os.environ, MAZEINTERP_QUICK="1", OMP_NUM_THREADS="1",
               JUPYTER_CONFIG_DIR=str(root / ".config"), JUPYTER_RUNTIME_DIR=str(root / ".runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(root / ".settings"), JUPYTERLAB_WORKSPACES_DIR=str(root / ".workspaces"))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True", "--allow-root"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"JupyterLab did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.2)  # polling a server that is starting, not waiting on the page
        yield f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", root / NOTEBOOK.name
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def page(lab: tuple[str, Path]) -> Iterator[tuple[object, list[str]]]:
    """A Chromium page on the notebook, and the list its console errors and page errors are appended to."""
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            pg = browser.new_page(viewport={"width": 1600, "height": 1200})
            pg.set_default_timeout(TIMEOUT_MS)
            pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
            pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            pg.goto(lab[0])
            pg.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                 " && window.jupyterapp.shell.currentWidget.sessionContext"
                                 " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                 " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                 " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                                 " === 'idle'")
            yield pg, errors
        finally:
            browser.close()


def _run_all(pg) -> None:
    """Run All Cells (the menu's command) and wait until every code cell has run with a new execution count."""
    before = pg.evaluate(_MAX_COUNT)
    pg.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    _wait(pg, f"""() => {{
        const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
        return prompts.length > 0 && prompts.every(p => {{
            const m = p.textContent.match(/\\[(\\d+)\\]/); return m && Number(m[1]) > {before};
        }});
    }}""", "every cell to run")
    errors = pg.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] .jp-RenderedText"
                        ":has-text('Traceback'), .jp-OutputArea-output .ansi-red-fg")
    assert errors.count() == 0, f"a cell raised: {errors.first.text_content()}"


_MAX_COUNT = """() => Math.max(0, ...[...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .map(p => Number((p.textContent.match(/\\[(\\d+)\\]/) || [0, 0])[1])))"""


def _wait(pg, predicate: str, what: str) -> None:
    """Wait until the JavaScript ``predicate`` holds; else fail saying what the explorer shows."""
    try:
        pg.wait_for_function(predicate)
    except sync_api.TimeoutError:
        shown = pg.evaluate(f"""() => [{PROGRESS!r}, {CAPTION!r}, {PICTURE!r}, {TABLE!r},
            '.jp-OutputArea .explorer-status'].map(s => document.querySelector(s))
            .map(e => e && e.textContent + (e.naturalWidth !== undefined ? `image ${{e.naturalWidth}} px wide` : ''))
            .concat([...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent))""")
        raise AssertionError(f"timed out waiting for {what}; the explorer shows {shown}") from None


def _complete_picture(pg, must_contain: str = "") -> str:
    """Wait until the explorer's label ends its computing and its picture is a drawn image of that complete view
    (its caption ``field n/n cells``, containing ``must_contain``); → the caption."""
    _wait(pg, f"""() => {{
        const label = document.querySelector({PROGRESS!r});
        const img = document.querySelector({PICTURE!r});
        const caption = (document.querySelector({CAPTION!r}) || {{textContent: ''}}).textContent;
        if (!label || !img || !img.complete || img.naturalWidth === 0) return false;
        const m = label.textContent.match(/field: (\\d+)\\/(\\d+) cells/);
        return m && m[1] === m[2] && !label.textContent.includes('computing')
            && caption.includes(`field ${{m[1]}}/${{m[2]}} cells`) && caption.includes({must_contain!r});
    }}""", f"a complete picture showing {must_contain!r}")
    assert pg.locator(PICTURE).count() == 1, "one explorer on the page (the first run's output is replaced)"
    return pg.locator(CAPTION).text_content()


def _table(pg) -> tuple[tuple[int, int], dict[str, np.ndarray]]:
    """The probability table: the mouse's cell and each row's five numbers."""
    text = pg.locator(TABLE).inner_html()
    mouse = tuple(int(v) for v in re.search(r"mouse at \((\d+), (\d+)\)", text).groups())
    rows = {name: np.array([float(v) for v in re.findall(r"<td>([-+0-9.]+)</td>", cells)])
            for name, cells in re.findall(r"<tr><td>(\w+)</td>(.*?)</tr>", text)}
    return mouse, rows  # type: ignore[return-value]


def _expected(state, coefficient: float) -> dict[str, np.ndarray]:
    """The table's rows by a direct library call: move probabilities at the mouse, plain and with the cheese
    vector times ``coefficient``."""
    import mazeinterp as mi
    from mazeinterp.core.interventions import AddVector
    from mazeinterp.analysis.steering import DEFAULT_STEERING_HOOK, cheese_vector
    from mazeinterp.analysis.vfield import move_probs_for_states

    policy = mi.load_policy("maze-s1-r5-v5")
    plain = move_probs_for_states(policy, [state])[0]
    vector = AddVector(DEFAULT_STEERING_HOOK, cheese_vector(policy, state, DEFAULT_STEERING_HOOK), coefficient)
    edited = move_probs_for_states(policy, [state], [vector])[0]
    return {"policy": plain, "edited": edited, "change": edited - plain}


def _notebook_maze():
    """The maze the notebook opens in its quick run (its second cell's choice, made here independently)."""
    from mazeinterp.rollout import load_mazes
    from mazeinterp.analysis.vfield import cheese_ward_move

    mazes = [s for s in load_mazes(range(1_000_000, 1_000_064)) if s.maze_size >= 7 and cheese_ward_move(s)]
    return min(mazes, key=lambda s: s.maze_size)


def _assert_table(rows: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert rows.keys() == expected.keys()
    for name in rows:  # the table prints three decimals
        assert np.allclose(rows[name], expected[name], atol=6e-4), (name, rows[name], expected[name])


def test_saving_the_opened_notebook_changes_nothing(page, lab):
    """The tracked notebook is in the form JupyterLab saves (kernel metadata included): opening it and saving, as
    its autosave does, leaves the file as it was."""
    pg, _errors = page
    pg.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    stored, saved = NOTEBOOK.read_text(), lab[1].read_text()
    # the kernel writes its own Python version (3.11.x); the stored one is the project's
    field = r'("pygments_lexer": "ipython3",\n\s*"version": )"([0-9.]+)"'
    saved = re.sub(field, rf'\g<1>"{re.search(field, stored).group(2)}"', saved)
    assert saved == stored, "saving the opened notebook changed it"


def test_run_all_twice_then_click_and_change_the_coefficient(page):
    pg, errors = page
    for run in (1, 2):
        _run_all(pg)
        caption = _complete_picture(pg, "cheese vector ×-1")
        assert not errors, f"run {run}: the browser logged {errors}"
    maze = _notebook_maze()
    mouse, rows = _table(pg)
    state = maze.with_mouse(mouse)
    _assert_table(rows, _expected(state, -1.0))

    # a click on an open cell away from the mouse and the cheese moves the cheese there
    target = next((int(r), int(c)) for r, c in np.argwhere(state.open_cells)
                  if (r, c) not in (state.mouse, state.cheese))
    picture = pg.locator(PICTURE).get_attribute("src")
    pg.locator(f".jp-OutputArea button[title='{target}']").click()
    caption = _complete_picture(pg, f"cheese at {target}")
    assert pg.locator(PICTURE).get_attribute("src") != picture, "the picture was redrawn"
    moved = state.with_cheese(target)
    _assert_table(_table(pg)[1], _expected(moved, -1.0))

    # a new coefficient, typed into the slider's readout
    readout = pg.locator(".jp-OutputArea .widget-slider .widget-readout")
    readout.click()
    pg.keyboard.press("Control+A")
    pg.keyboard.type("-2")
    pg.keyboard.press("Enter")
    caption = _complete_picture(pg, "cheese vector ×-2")
    assert f"cheese at {target}" in caption
    _assert_table(_table(pg)[1], _expected(moved, -2.0))
    assert not errors, f"the browser logged {errors}"
