"""`cvdemo bench app`: how long people wait in the app, measured in a real headless Chromium.

Each figure is the median of 3 and is set against the same step in a bare two-page Streamlit app started
in the same run (`benchmarks/bare_app.py`), the least any Streamlit app costs on this machine:

    first_render     server answering -> the Home page's title drawn    (baseline: its first page)
    page_switch      a sidebar link clicked -> the Train page's form     (baseline: its second page's title)
    start_to_curve   "Start training" on the Train form (LeNet, digits) -> the first curve drawn
    evaluate_cold    the Evaluate page opened on a run never evaluated -> its confusion matrix drawn
    evaluate_warm    the same, a second time (predictions stored in the run folder, cached in the app)
    explain_gradcam  a photo uploaded on Explain (ImageNet network, the default methods: saliency and Grad-CAM)
                     -> the Grad-CAM map drawn; a new photo each time, the network already loaded
    explain_checked  the same upload -> the Grad-CAM map's check against random maps written under it
    explain_first    the first upload after the server started (loads the network; once, not a median)
    tsne_500         t-SNE chosen on Embeddings (a digits run just finished, 500 test images, 2-D)
                     -> its scatter drawn; a new run each time, so nothing is cached

`ratio` is the baseline's page switch over ours (1.0: no slower than an empty Streamlit page). It needs
Playwright and Debian's chromium (`make install-test`); it says so in one sentence when they are missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from cvdemo.errors import CvdemoError

ROOT = Path(__file__).resolve().parents[2]
BARE = ROOT / "benchmarks" / "bare_app.py"  # a Streamlit script: outside cvdemo/, which never imports streamlit
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]
REPEAT = 3


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(script: Path, runs_root: Path) -> Iterator[tuple[str, float]]:
    """A Streamlit server on a free localhost port; yields its URL and when it first answered."""
    port = _port()
    env = {**os.environ, "CVDEMO_RUNS": str(runs_root)}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
                             "--server.headless", "true", "--server.fileWatcherType", "none",
                             "--server.address", "127.0.0.1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.time() > deadline:
                    raise CvdemoError(f"the Streamlit server for {script.name} did not start in 90 s") from None
                time.sleep(0.1)
        yield url, time.perf_counter()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # a loaded machine: never leave a server behind
            proc.kill()
            proc.wait()


def _seconds(*steps: Callable[[], Any]) -> float:
    """Wall time of the steps done one after the other."""
    start = time.perf_counter()
    for step in steps:
        step()
    return time.perf_counter() - start


def _trained_run(root: Path) -> Path:
    """A LeNet digits run for the Evaluate figures (2 epochs, through the CLI)."""
    out = subprocess.run([sys.executable, "-m", "cvdemo", "train", "--data", "digits", "--epochs", "2", "--out",
                          str(root), "--device", "cpu", "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        raise CvdemoError(f"could not train the run the benchmark evaluates: {out.stderr.strip()[-300:]}")
    return Path(json.loads(out.stdout.strip().splitlines()[-1])["run"])


def _photos(folder: Path) -> list[Path]:
    """Four real photos as PNG files (scikit-image ships them): the first is uploaded while the network is
    still unloaded, the three others are the timed repeats; each a new image, so no cached map is reused."""
    from PIL import Image
    from skimage import data

    paths = []
    for name in ("chelsea", "astronaut", "coffee", "rocket"):
        paths.append(folder / f"{name}.png")
        Image.fromarray(getattr(data, name)()).save(paths[-1])
    return paths


def summary(times: dict[str, list[float]]) -> dict[str, Any]:
    """The median of each step's times (rounded to 10 ms) and `ratio`, the bare app's page switch over ours."""
    out: dict[str, Any] = {name: round(statistics.median(values), 2) for name, values in times.items()}
    out["ratio"] = out["baseline_page_switch"] / out["page_switch"]
    return out


def bench_app(device: torch.device) -> dict[str, Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise CvdemoError("cvdemo bench app needs Playwright: run `make install-test` first") from None
    if not Path(CHROMIUM).exists():
        raise CvdemoError("cvdemo bench app needs Debian's chromium: run `make install-test` (it installs it)")
    times: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        times.setdefault(name, []).append(value)
        print(f"  {name}: {value:.2f} s", file=sys.stderr, flush=True)  # what a failed run still got

    with tempfile.TemporaryDirectory(prefix="cvdemo-bench-app-") as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(120_000)  # clicks too: on a loaded machine a link can take longer than 30 s

        def h1(text: str, timeout: float = 120_000) -> None:
            page.locator("h1", has_text=text).first.wait_for(timeout=timeout)

        def link(name: str) -> Any:
            return page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True)

        for _ in range(REPEAT):  # a fresh server each time: the first render is what a classroom waits for
            with _server(BARE, Path(tmp)) as (url, ready):
                page.goto(url)
                h1("First")
                add("baseline_first_render", time.perf_counter() - ready)
                link("Second").click()  # once to load the page's code, then timed
                h1("Second")
                link("First").click()
                h1("First")
                add("baseline_page_switch", _seconds(link("Second").click, lambda: h1("Second")))
        runs_root = Path(tmp) / "runs"
        runs_root.mkdir()
        run = _trained_run(runs_root)
        with _server(ROOT / "streamlit_app.py", runs_root) as (url, ready):
            page.goto(url)
            h1("image classification playground")
            add("first_render", time.perf_counter() - ready)
            form = page.get_by_test_id("stForm")
            link("Train").click()  # the first visit loads torch and the models: counted in first_render's kind
            form.wait_for(timeout=120_000)
            for _ in range(REPEAT):
                link("Home").click()
                h1("image classification playground")
                add("page_switch", _seconds(link("Train").click, lambda: form.wait_for(timeout=60_000)))
            charts = page.get_by_test_id("stVegaLiteChart")
            for _ in range(REPEAT):
                start = time.perf_counter()
                page.get_by_role("button", name="Start training").click()
                # The page watches the new run as soon as it exists: before its first steps are recorded it
                # says so instead of drawing (the runs before it all have curves); then its curve appears.
                waiting = page.get_by_text("The curves appear when the first training steps are recorded.")
                waiting.wait_for(timeout=60_000)
                waiting.wait_for(state="detached", timeout=120_000)
                charts.first.wait_for(timeout=120_000)
                add("start_to_curve", time.perf_counter() - start)
                page.get_by_role("button", name="Cancel this run").click()
                page.get_by_text("The run was cancelled").wait_for(timeout=60_000)
            for kind in ("cold", "warm"):
                for _ in range(REPEAT if kind == "warm" else 1):
                    if kind == "cold":
                        shutil.rmtree(run / "analysis", ignore_errors=True)  # stored predictions
                    start = time.perf_counter()
                    page.goto(f"{url}/evaluate")
                    page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=180_000)
                    add(f"evaluate_{kind}", time.perf_counter() - start)

            def idle() -> None:
                """Wait until the page's script has finished (Streamlit's "Running..." icon gone): a run
                still going on in the server would hold the network's lock in the next measurement."""
                page.wait_for_timeout(300)
                page.get_by_test_id("stStatusWidgetRunningIcon").wait_for(state="detached", timeout=300_000)

            gradcam = page.get_by_test_id("stImageCaption").filter(has_text=re.compile("^Grad-CAM$"))
            checked = page.get_by_text(re.compile("^Hiding the pixels this map points at"))
            for i, photo in enumerate(_photos(Path(tmp))):
                page.goto(f"{url}/explain")  # a fresh session: the uploader is empty, the defaults chosen
                h1("Explain")
                upload = page.locator("input[type=file]")
                upload.wait_for(state="attached", timeout=60_000)
                idle()
                start = time.perf_counter()
                upload.set_input_files(str(photo))
                gradcam.first.wait_for(timeout=300_000)
                add("explain_first" if i == 0 else "explain_gradcam", time.perf_counter() - start)
                checked.nth(1).wait_for(timeout=300_000)  # saliency's sentence, then Grad-CAM's
                if i:
                    add("explain_checked", time.perf_counter() - start)
                idle()
            tsne = page.get_by_test_id("stVegaLiteChart").filter(has_text="t-SNE 1")
            for _ in range(REPEAT):
                _trained_run(runs_root)  # the newest finished run: the one the page opens on
                page.goto(f"{url}/embeddings")
                h1("Embeddings")
                page.get_by_test_id("stVegaLiteChart").first.wait_for(timeout=180_000)  # PCA, the default
                idle()
                start = time.perf_counter()
                page.get_by_test_id("stButtonGroup").get_by_text("t-SNE", exact=True).click()
                tsne.first.wait_for(timeout=300_000)
                add("tsne_500", time.perf_counter() - start)
                idle()
        browser.close()
    return summary(times)
