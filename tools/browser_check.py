"""Open a finished study's MLflow runs in headless Chromium and check what a researcher sees.

Starts ``mlflow ui`` on 127.0.0.1 (a free port) for the store, and checks that the experiment link the
leaderboard gives (``?workflowType=machine_learning``) opens the model-training view in a fresh browser
(MLflow 3.17's UI ignores the ``mlflow.experimentKind`` tag: the plain experiment URL opens its GenAI
overview), that the runs table sorted by a benchmark metric with that metric as a column names
every objective and shows the metric's values, that a trial run's logged image strips load and its
params are its own configuration (no ``sweep.*``), that every logged model carries the benchmark
metric, and that the parent run shows the per-objective summary and the summary across benchmarks as
its description. Screenshots go to ``--screenshots`` (``default_view.png``, ``runs_table.png``,
``child_run.png``, ``child_run_images.png``, ``parent_summary.png``).
The server is stopped on every exit path. Exit status 0 when every check passed, 1 otherwise (each
failed check printed), 2 when the store, Playwright or Chromium is missing.

    python tools/tiny_study.py /tmp/tiny
    python tools/browser_check.py --store /tmp/tiny/mlflow.db --metric Tiny/x2/psnr
    python tools/browser_check.py --store mlflow.db --metric Set5/x2/psnr      # after `make repro`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import mlflow

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.report.run_store import experiment_link  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
LOAD_SECONDS = 120  # the UI's first page load is slow on a busy 2-core machine


class Missing(Exception):
    """A prerequisite (the store, Playwright, Chromium) is not there."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def mlflow_ui(store: Path, port: int, log: Path) -> Iterator[str]:
    """``mlflow ui`` for ``store`` on 127.0.0.1:``port`` in its own process group, stopped on exit."""
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    with log.open("w") as output:
        server = subprocess.Popen([str(mlflow_bin), "ui", "--backend-store-uri", f"sqlite:///{store}", "--host",
                                   "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=store.parent, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + LOAD_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise Missing(f"mlflow ui did not start (see {log})") from None
                time.sleep(1)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def check(store: Path, experiment: str, metric: str, screenshots: Path, metrics_file: Path) -> list[str]:
    """Every failed check, as a sentence (empty when all passed)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise Missing("Playwright is not installed; `pip install playwright` (the `test` extra)") from None
    if not Path(CHROMIUM).is_file():
        raise Missing(f"{CHROMIUM} is missing; `apt-get install -y chromium`")
    if not store.is_file():
        raise Missing(f"the MLflow store {store} does not exist; run a study first (tools/tiny_study.py)")
    if not metrics_file.is_file():
        raise Missing(f"{metrics_file} does not exist; evaluate the study first, or pass its --metrics-file")
    results = json.loads(metrics_file.read_text())
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise Missing(f"experiment '{experiment}' is not in {store}")
    runs = client.search_runs([found.experiment_id], "attributes.status = 'FINISHED'")
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags and metric in run.data.metrics]
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags
               and any(key.endswith("/psnr") for key in run.data.metrics)]
    if not children or not parents:
        raise Missing(f"no finished, evaluated sweep in '{experiment}' of {store} (no run has metric {metric})")
    objectives = sorted({run.data.tags["objective"] for run in children})
    child, parent = children[0], parents[0]
    screenshots.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with mlflow_ui(store, free_port(), screenshots / "mlflow_ui.log") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.set_default_timeout(LOAD_SECONDS * 1000)
            failures += default_view(page, f"{url}/#/experiments/{found.experiment_id}", parent, screenshots)
            failures += stored_runs(client, found.experiment_id, children, metric)
            page.goto(f"{url}/#/experiments/{found.experiment_id}?workflowType=machine_learning")
            page.get_by_role("button", name="Close").first.click()  # the assistant side panel: room for the table
            experiment_url = f"{url}/#/experiments/{found.experiment_id}"
            failures += runs_table(page, experiment_url, metric, objectives, children, screenshots)
            failures += child_images(page, f"{experiment_url}/runs/{child.info.run_id}", child.info.run_name,
                                     screenshots)
            failures += parent_summary(page, f"{experiment_url}/runs/{parent.info.run_id}", results, metric,
                                       screenshots)
        finally:
            browser.close()
    return failures


def default_view(page, experiment_url: str, parent, screenshots: Path) -> list[str]:
    """A fresh browser opens the leaderboard's experiment link in the model-training view (its runs table
    lists the sweep's parent run, the trials folded under it). The plain experiment URL opens the GenAI
    overview, in a fresh browser and even after the link (MLflow 3.17.2), so only the link is checked."""
    for url, how in ((experiment_link_of(experiment_url), "from the leaderboard's link"),):
        page.goto(url)
        try:
            page.get_by_text(parent.info.run_name, exact=True).first.wait_for(timeout=LOAD_SECONDS * 500)
        except Exception:  # noqa: BLE001 - Playwright's timeout: the page shows something else
            page.screenshot(path=str(screenshots / "default_view.png"))
            return [f"the experiment did not open in the model-training view {how} (no run "
                    f"'{parent.info.run_name}' listed)"]
    page.screenshot(path=str(screenshots / "default_view.png"))
    return []


def experiment_link_of(experiment_url: str) -> str:
    """The link the leaderboard gives for the experiment at ``experiment_url`` (``run_store.experiment_link``)."""
    server, experiment_id = experiment_url.split("/#/experiments/")
    return experiment_link(server, experiment_id)


def stored_runs(client, experiment_id: str, children: list, metric: str) -> list[str]:
    """Each trial's params are its own configuration, and each logged model carries ``metric``."""
    failures = []
    for run in children:
        swept = sorted(key for key in run.data.params if key.startswith("sweep."))
        if swept:
            failures.append(f"run '{run.info.run_name}' logs the sweep's params ({swept[0]}, ...)")
    for model in client.search_logged_models(experiment_ids=[experiment_id]):
        if metric not in {entry.key for entry in model.metrics or []}:
            failures.append(f"the logged model '{model.name}' carries no {metric}")
    return failures


def runs_table(page, experiment_url: str, metric: str, objectives: list[str], children: list,
               screenshots: Path) -> list[str]:
    """The runs sorted by ``metric`` (the URL flattens the nesting), with ``metric`` added as a column."""
    order = quote(f"metrics.`{metric}`", safe="")
    page.goto(f"{experiment_url}/runs?workflowType=machine_learning&orderByKey={order}&orderByAsc=false")
    page.get_by_text(children[0].info.run_name, exact=True).first.wait_for()
    page.get_by_role("button", name="Columns", exact=True).click()
    page.get_by_text(metric, exact=True).first.click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(screenshots / "runs_table.png"))
    failures = []
    table = page.locator("[role=grid]").first.inner_text()
    if metric not in table:
        failures.append(f"the runs table has no '{metric}' column")
    for objective in objectives:
        if not any(line.startswith(f"{objective} ") for line in table.splitlines()):
            failures.append(f"the runs table names no run of objective '{objective}'")
    value = str(children[0].data.metrics[metric])[:5]  # the table shows the value cut, not rounded
    if value not in table:
        failures.append(f"the runs table does not show {metric} = {value}... of run '{children[0].info.run_name}'")
    return failures


def child_images(page, run_url: str, run_name: str, screenshots: Path) -> list[str]:
    """The trial run's page, and its logged image strips loaded in the browser."""
    page.goto(f"{run_url}?workflowType=machine_learning")
    page.get_by_text(run_name, exact=True).first.wait_for()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(screenshots / "child_run.png"), full_page=True)
    page.goto(f"{run_url}/artifacts?workflowType=machine_learning")
    page.get_by_text("images", exact=True).first.click()
    page.get_by_text(re.compile(r"^bicubic-sr-hr.*[0-9a-f]\.png$")).first.click()  # the PNG, not its webp preview
    image = page.locator("img[src^='blob:']").first  # the preview, fetched from the artifact store
    image.wait_for()
    page.wait_for_function("img => img.complete", arg=image.element_handle())
    page.screenshot(path=str(screenshots / "child_run_images.png"))
    width = image.evaluate("img => img.naturalWidth")
    return [] if width > 0 else [f"the image strip of run '{run_name}' did not load"]


def parent_summary(page, run_url: str, results: dict[str, float], metric: str, screenshots: Path) -> list[str]:
    """The parent run's page lists every benchmark mean of ``metric``'s benchmark and scale that ``metrics.json``
    holds (``<benchmark>/<scale>/<row>/psnr``: each objective, bicubic and each other decode), by the same name,
    and shows the summary across benchmarks as its description."""
    page.goto(f"{run_url}?workflowType=machine_learning")
    benchmark, scale = metric.split("/")[:2]
    wanted = [name for name in results if name.startswith(f"{benchmark}/{scale}/") and name.endswith("/psnr")]
    page.get_by_text(wanted[0], exact=True).first.wait_for()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(screenshots / "parent_summary.png"), full_page=True)
    text = page.inner_text("body")
    failures = [f"the parent run does not show {name}" for name in wanted if name not in text]
    if "PSNR on every benchmark" not in text:
        failures.append("the parent run's description does not show the summary across benchmarks")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=ROOT / "mlflow.db", help="the SQLite MLflow store")
    parser.add_argument("--experiment", default="srloss")
    parser.add_argument("--metric", default="Set5/x2/psnr", help="benchmark metric logged on every trial run")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "screenshots", help="where the PNGs go")
    parser.add_argument("--metrics-file", type=Path, default=None,
                        help="the study's metrics.json (default: results/metrics.json beside the store)")
    args = parser.parse_args(argv)
    metrics_file = args.metrics_file or args.store.resolve().parent / "results" / "metrics.json"
    try:
        failures = check(args.store.resolve(), args.experiment, args.metric, args.screenshots.resolve(),
                         metrics_file.resolve())
    except Missing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    print(f"{'all checks passed' if not failures else f'{len(failures)} check(s) failed'}; screenshots in "
          f"{args.screenshots}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
