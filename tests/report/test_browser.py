"""The report of a real smoke run and of an eval directory, opened from disk in headless Chromium and
driven as a person would: a stage's plot, a rollout with its hint, the eval table and a task.

`make test` installs Debian's chromium and chromium-driver when they are missing (as root); where
they cannot be installed the test is skipped and says so. Screenshots of each view go to the test's
temporary directory.
"""

import json
import shutil

import pytest

from envtune.cli import main
from envtune.eval.scripted import serve_scripted
from envtune.run_files import append_jsonl
from envtune.train.engine import rollout_record
from hinted_rollout import HINT_KIND, played_rollout

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromedriver are not installed: `make test` installs Debian's chromium and chromium-driver "
           "with apt-get when it runs as root; install them to run the browser test",
)
EVAL_IDS = "multi_turn_base_0,multi_turn_base_1,multi_turn_miss_func_0,multi_turn_miss_param_0,multi_turn_long_context_0"


@pytest.fixture(scope="module")
def report(tmp_path_factory, tasks):
    """A smoke run with one more sampled rollout (a wrong call, its hint, then the ground truth: the
    random tiny model never makes a call) and a scripted model's eval with augmented feedback."""
    root = tmp_path_factory.mktemp("report")
    assert main(["tune", "--preset", "smoke", "--output", str(root / "run")]) == 0
    rollout = played_rollout(tasks["multi_turn_base_0"])
    append_jsonl(root / "run" / "rollouts.jsonl", {"stage": "hints", "training_step": 1, **rollout_record(rollout)})
    server = serve_scripted()
    try:
        assert main(["eval", "--base-url", server.url, "--model", server.model_name, "--protocol", "prompt",
                     "--feedback", "augmented", "--ids", EVAL_IDS, "--samples", "2", "--output", str(root / "eval")]) == 0
    finally:
        server.close()
    assert main(["report", str(root / "run"), str(root / "eval"), "--output", str(root / "report.html")]) == 0
    return root


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def test_the_report_shows_every_view_with_no_script_errors(report, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get((report / "report.html").as_uri())
    shots = report / "screenshots"
    shots.mkdir()
    assert browser.execute_script("return typeof Plotly") == "object"
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(entry => entry.name)")
    assert fetched == []  # everything is inlined: nothing is fetched, from disk or network
    browser.save_screenshot(str(shots / "curriculum.png"))

    # a stage's plot: the axis zooms to the stage and its transition checks show
    summary = json.loads((report / "run" / "summary.json").read_text())
    hints = summary["stages"][1]
    browser.find_element(By.CSS_SELECTOR, ".stage-buttons button[data-stage='hints']").click()
    detail = browser.find_element(By.CSS_SELECTOR, ".stage-detail").text
    assert "Stage 2: hints" in detail and hints["decision"] in detail
    syntax_steps = summary["stages"][0]["steps"]
    shown = browser.execute_script("return document.getElementById('curriculum-plot-0').layout.xaxis.range")
    assert shown == [syntax_steps - 0.5, syntax_steps + hints["steps"] + 0.5]
    traces = browser.execute_script("return document.getElementById('curriculum-plot-0').data.map(trace => trace.name)")
    assert {"reward", "grad norm", "KL", "entropy", "format-error rate", "progress", "transition decision"} <= set(traces)
    browser.save_screenshot(str(shots / "stage.png"))

    # a rollout with its hint, turn by turn
    browser.find_element(By.ID, "tab-rollouts").click()
    Select(browser.find_element(By.CSS_SELECTOR, "#view-rollouts select[data-filter='hint']")).select_by_visible_text(HINT_KIND)
    [row] = browser.find_elements(By.CSS_SELECTOR, "#view-rollouts table.list tbody tr")
    row.click()
    turns = browser.find_elements(By.CSS_SELECTOR, "#rollout-viewer .turn")
    assert len(turns) == 4 and all("passed" in turn.get_attribute("class") for turn in turns)
    [hint] = turns[0].find_elements(By.CSS_SELECTOR, ".hint")
    assert hint.text.startswith("Hint: There is no directory 'nowhere'")
    assert "Hint:" not in turns[0].find_element(By.CSS_SELECTOR, ".msg.environment pre").text
    browser.save_screenshot(str(shots / "rollout.png"))

    # the eval table, then a failed task next to its ground truth
    browser.find_element(By.ID, "tab-evaluation").click()
    eval_summary = json.loads((report / "eval" / "summary.json").read_text())
    cells = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#table-one tbody tr td")]
    assert cells[0] == "envtune-scripted"
    expected = f"{eval_summary['overall']:.3f} ± {eval_summary['overall_interval95']:.3f}"
    assert cells[-1] == expected
    browser.save_screenshot(str(shots / "evaluation.png"))
    Select(browser.find_element(By.CSS_SELECTOR, "#view-evaluation select[data-filter='verdict']")).select_by_visible_text("failed")
    failed = browser.find_elements(By.CSS_SELECTOR, "#view-evaluation table.list tbody tr")
    records = sorted(map(json.loads, (report / "eval" / "results.jsonl").open()),
                     key=lambda record: (record["category"], record["id"], record["sample"]))  # the list's order
    assert len(failed) == sum(not record["valid"] for record in records) > 0
    failed[0].click()
    viewer = browser.find_element(By.ID, "eval-viewer-0")
    first_failed = next(record for record in records if not record["valid"])
    assert first_failed["reason"] in viewer.text
    # the turns that failed or were never played, each with the model's calls beside the ground truth
    assert viewer.find_elements(By.CSS_SELECTOR, ".turn.failed .calls, .turn.unplayed .calls")
    browser.save_screenshot(str(shots / "task.png"))

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
