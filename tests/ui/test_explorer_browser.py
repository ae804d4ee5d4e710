"""The clip explorer in a real browser: notebook 04 run in JupyterLab, driven by headless Chromium.

A tiny synthetic run is built with `emoclip reproduce` (or taken from `EMOCLIP_UI_RUN`, to iterate
quickly); a copy of notebook 04 whose parameters point at it (`interactive = True`) is opened in JupyterLab
and run from the Run menu; a query is typed, a clip picked, and the screenshots are written to `runs/ui-shots/`
(or `EMOCLIP_UI_SHOTS`: the committed `docs/` ones come from `EMOCLIP_UI_RUN=runs/notebooks EMOCLIP_UI_SHOTS=docs`). Debian's `chromium` and `chromium-driver` drive it through selenium, with no
download at run time (`make test-ui` installs them when missing). Every process started here (the run's
notebooks, Jupyter and its kernels, chromedriver and Chromium) is stopped, pass or fail.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import nbformat
import psutil
import pytest

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: emoclip, jupyter
NOTEBOOK = "04_zero_shot_evaluation.ipynb"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1800")
RUN_OVERRIDES = {"synth_size": "tiny", "pretrain_epochs": 1, "pretrain_web_pictures": 16, "epochs": 2, "n_seeds": 1,
                 "folds": [5], "loco": False, "n_boot": 0, "outer_folds": 2, "inner_folds": 2, "models": "ridge"}
REPRODUCE = ("reproduce", "--profile", "synthetic",
             *[x for k, v in RUN_OVERRIDES.items() for x in ("-p", k, json.dumps(v))])
QUERY = "a person smiling broadly with raised cheeks"
LAB_SETTINGS = {  # no network calls, every cell in the DOM (no windowing)
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}
JS_PANEL = """const app = window.jupyterapp;  // the open notebook's panel (the shell's focus is unreliable headless)
const w = app && Array.from(app.shell.widgets('main')).find(w => w.sessionContext && w.content && w.content.widgets);
"""
JS_KERNEL = JS_PANEL + """const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
return k ? k.status : null;"""
JS_PROGRESS = JS_PANEL + """
const code = w.content.widgets.filter(c => c.model.type === 'code');
const k = w.sessionContext.session.kernel;
return {ran: code.filter(c => c.model.executionCount !== null).length, cells: code.length, status: k.status};"""
JS_ERRORS = JS_PANEL + """const out = [];
w.content.widgets.forEach((c, i) => { if (c.model.type !== 'code') return;
  for (const o of c.model.outputs.toJSON()) {
    if (o.output_type === 'error') out.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    if (o.output_type === 'stream' && o.name === 'stderr') out.push(`cell ${i} stderr: ${o.text}`);
  } });
const text = document.body.innerText;
for (const bad of ['Error displaying widget', 'Failed to load model', 'Traceback']) {
  if (text.includes(bad)) out.push(`page shows '${bad}'`); }
return out;"""
JS_IMAGES = """return Array.from(document.querySelectorAll(arguments[0])).map(
  i => ({src: i.src, loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth}));"""


class Lab(NamedTuple):
    url: str
    token: str


def _stop(pid: int, grace: float = 15.0) -> None:
    """Stop a process we started and every process it started (by their ids): TERM, then KILL."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def _wait(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    end, last = time.monotonic() + timeout, None
    while time.monotonic() < end:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def ui_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic run (notebooks 01-05), or the one named by EMOCLIP_UI_RUN."""
    if os.environ.get("EMOCLIP_UI_RUN"):
        return Path(os.environ["EMOCLIP_UI_RUN"]).resolve()
    out = tmp_path_factory.mktemp("ui") / "run"
    log = out.parent / "reproduce.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([str(BIN / "emoclip"), *REPRODUCE, "--out", str(out)], cwd=ROOT, stdout=fh,
                                stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            code = "timeout (300 s)"
        finally:
            _stop(proc.pid)
    assert code == 0, f"emoclip reproduce failed ({code}):\n{log.read_text()[-3000:]}"
    return out


@pytest.fixture(scope="module")
def notebook(ui_run: Path) -> Iterator[Path]:
    """A copy of notebook 04, outputs cleared, its parameters cell set to the run and `interactive = True`."""
    (ROOT / "runs").mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="ui-test-", dir=ROOT / "runs"))  # under the server's root, ignored by git
    nb = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    source, n_run = re.subn(r"^run_dir = .*$", f"run_dir = {str(ui_run)!r}", params.source, flags=re.M)
    source, n_int = re.subn(r"^interactive = None", "interactive = True ", source, flags=re.M)
    assert (n_run, n_int) == (1, 1), "notebook 04's parameters cell lacks `run_dir = ...` or `interactive = None`"
    if not os.environ.get("EMOCLIP_UI_RUN"):  # the run's own overrides (no LOCO training in the browser)
        for name, value in RUN_OVERRIDES.items():
            source = re.sub(rf"^{name} = None", f"{name} = {value!r}", source, flags=re.M)
    params.source = source
    nbformat.write(nb, folder / NOTEBOOK)
    try:
        yield folder / NOTEBOOK
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _lab_home(home: Path) -> dict[str, str]:
    """Private Jupyter folders and settings under `home`; the environment that points at them."""
    for name, values in LAB_SETTINGS.items():
        path = home / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    dirs = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_RUNTIME_DIR": "runtime", "JUPYTER_DATA_DIR": "data",
            "IPYTHONDIR": "ipython"}
    return {**os.environ, **{key: str(home / sub) for key, sub in dirs.items()}}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a free loopback port with a token, rooted at the repository."""
    home = tmp_path_factory.mktemp("lab")
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [str(BIN / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
           "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={home / 'settings'}",
           f"--LabApp.workspaces_dir={home / 'workspaces'}", "--LabApp.news_url=",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
           *(["--allow-root"] if os.geteuid() == 0 else [])]  # CI runs as root
    log = (home / "jupyter.log").open("w")
    proc = subprocess.Popen(cmd, env=_lab_home(home), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, f"jupyter lab exited:\n{(home / 'jupyter.log').read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    try:
        _wait("jupyter lab to answer", up, 60)
        yield Lab(url, token)
    finally:
        _stop(proc.pid)
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver (no Selenium Manager, nothing downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    assert not missing, f"{', '.join(missing)} missing: `make test-ui` installs chromium and chromium-driver"
    profile = tmp_path_factory.mktemp("chromium-profile")  # a new, empty user data dir
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console, for the error check
    service = Service(str(CHROMEDRIVER), log_output=str(profile.parent / "chromedriver.log"))
    driver = None
    try:
        driver = webdriver.Chrome(service=service, options=options)
        yield driver
    finally:
        pid = service.process.pid if getattr(service, "process", None) else None
        family = psutil.Process(pid).children(recursive=True) if pid and psutil.pid_exists(pid) else []
        try:
            if driver is not None:
                driver.quit()
        finally:
            for proc in family:  # Chromium's processes, should quit() have left any
                if proc.is_running():
                    _stop(proc.pid, grace=5)
            if pid:
                _stop(pid, grace=5)


def _open_and_run(driver: Any, lab: Lab, notebook: Path) -> None:
    """Open the notebook in JupyterLab, run every cell from the Run menu, wait for the last one."""
    from selenium.webdriver.common.by import By

    driver.get(f"{lab.url}/lab/tree/{notebook.relative_to(ROOT).as_posix()}?reset&token={lab.token}")
    _wait("the notebook's kernel to be idle", lambda: driver.execute_script(JS_KERNEL) == "idle", 120)
    menu = driver.find_element(By.XPATH, "//li[contains(@class, 'lm-MenuBar-item')][normalize-space(.)='Run']")
    menu.click()
    _wait("the Run menu", lambda: driver.find_elements(
        By.CSS_SELECTOR, "li.lm-Menu-item[data-command='runmenu:run-all']"), 10)[0].click()

    def finished() -> bool:
        state = driver.execute_script(JS_PROGRESS)
        return state["ran"] == state["cells"] and state["status"] == "idle" and state

    _wait("every cell of notebook 04 to run", finished, 180, interval=1.0)


def _images(driver: Any, selector: str) -> list[dict[str, Any]]:
    images = driver.execute_script(JS_IMAGES, selector)
    return images if images and all(i["loaded"] for i in images) else []


def _text(driver: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return found[0].text if found else ""


def _shoot(driver: Any, name: str) -> None:
    """Screenshot of the explorer widget to runs/ui-shots/ (or EMOCLIP_UI_SHOTS), never over a tracked file."""
    from selenium.webdriver.common.by import By

    root = driver.find_element(By.CSS_SELECTOR, ".emoclip-explorer-root")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", root)
    time.sleep(0.5)
    shots = Path(os.environ.get("EMOCLIP_UI_SHOTS", ROOT / "runs" / "ui-shots"))
    shots.mkdir(parents=True, exist_ok=True)
    assert root.screenshot(str(shots / name)), f"no screenshot {name}"


def _query(driver: Any, text: str) -> list[dict[str, Any]]:
    """Type a query and press Enter; the frame strips of the ranked clips once they are drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.CSS_SELECTOR, ".emoclip-explorer-query input")
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)
    box.send_keys(text, Keys.ENTER)
    _wait("the ranked clips of the query", lambda: f"for '{text}'" in _text(driver, ".emoclip-explorer-summary"), 60)
    return _wait("the ranked clips' frame strips", lambda: _images(driver, ".emoclip-explorer-results img"), 30)


def _pick(driver: Any, position: int) -> str:
    """Pick the clip at `position` in the Clip: dropdown; its path once its details are drawn."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    chart = _images(driver, "img.emoclip-explorer-chart")[0]["src"]
    select = Select(driver.find_element(By.CSS_SELECTOR, ".emoclip-explorer-clip select"))
    path = select.options[position].text.split(" ", 1)[1]
    select.select_by_index(position)
    _wait("the picked clip's details", lambda: path in _text(driver, ".emoclip-explorer-details"), 30)
    _wait("the picked clip's chart", lambda: (_images(driver, "img.emoclip-explorer-chart") or [{}])[0].get(
        "src") not in (None, chart), 30)
    return path


def _model_scale(run: Path) -> float:
    """The logit scale of the model notebook 04 explores (the run's first trained checkpoint)."""
    import torch

    from emoclip_lib.zeroshot import load_eval_model, model_scale

    checkpoint = json.loads((run / "03_results.json").read_text())["runs"][0]["checkpoint"]
    return model_scale(load_eval_model(run / checkpoint, torch.device("cpu"))[0])


def test_clip_explorer_in_jupyterlab(ui_run: Path, notebook: Path, lab: Lab, browser: Any) -> None:
    _open_and_run(browser, lab, notebook)
    assert browser.execute_script(JS_ERRORS) == []  # no error, traceback or stderr output on the page
    assert "Top 3 of" in _text(browser, ".emoclip-explorer-summary")  # opens on an example query's results
    assert _images(browser, ".emoclip-explorer-results img") and _images(browser, "img.emoclip-explorer-chart")
    _shoot(browser, "explorer_before.png")

    strips = _query(browser, QUERY)
    assert len(strips) == 3 and all(s["width"] > 0 for s in strips)  # ranked clips with their frames
    summary = _text(browser, ".emoclip-explorer-summary")
    assert " sd above the mean cosine of the " in summary and re.search(r"^(Clear|Weak) match", summary, re.M)
    assert re.search(r"z [+-]\d", _text(browser, ".emoclip-explorer-results"))

    path = _pick(browser, 1)
    details = _text(browser, ".emoclip-explorer-details")
    scale = _model_scale(ui_run)
    assert scale < 50 and f"{scale:.2f} × cosine" in details, (scale, details)  # the model's scale, not 100
    assert path in details and "caption:" in details
    assert _images(browser, "img.emoclip-explorer-frames")  # the picked clip's frames beside its chart
    assert browser.execute_script(JS_ERRORS) == []
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], "the page logged errors to its console"
    _shoot(browser, "explorer_after.png")
