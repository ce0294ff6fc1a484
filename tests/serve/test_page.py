"""The status page of a real `convoy serve` in a real headless browser (Debian's chromium, driven by Selenium).

The server is the module's `convoy serve` (tests/serve/conftest.py); the
browser is the session's. No Bazel runs: each test puts the store into the
state a build reaches with the code `convoy process` runs
(tests/serve/page_support.py), and the page shows it from the server's
/api/status and follows it over /api/events/stream. The tests run in order:
the page fills up as they go, and the last one saves a screenshot of it.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from convoy import requests
from convoy.models import TargetOutcome

from tests.serve.page_support import Build, open_store

HOSTILE = "v1.0.0<img src=x onerror=alert(1)><script>window.__pwned=1</script>"
HOSTILE_REASON = "stage build failed: <img src=x onerror=alert(2)><script>window.__pwned=2</script>"
HOSTILE_LABEL = "//integration:x_test<script>window.__pwned=3</script>"
HOSTILE_LOG = "FAIL: expected <b>ok</b>\n<script>window.__pwned=4</script>\n"
HOSTILE_NOTES = "planner v1.2.0\n<script>window.__pwned=5</script>\n"


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def wait(browser, condition, what: str, timeout: float = 10):
    """condition(browser), once it is true (an element page.js replaced meanwhile: look again)."""
    return WebDriverWait(browser, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
                         ).until(lambda d: condition(d), message=what)


def open_page(browser, server, path: str = "/") -> None:
    """Loads the page and waits until its event stream is open (and its first refresh asked for)."""
    browser.get(url(server, path))
    wait(browser, lambda d: d.find_element(By.ID, "live").text == "live", f"{path}: the event stream is not live")


def no_script_ran(browser) -> None:
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text


@pytest.fixture(scope="module")
def hardware(server):
    """A request in its hardware stage: build, integration and configuration passed, hardware's task building."""
    build = Build.start(server.root, version="v1.1.0")
    for name in ("build", "integration", "configuration"):
        build.pass_stage(name)
    build.start_task("hardware")
    yield build
    build.close()


STAGE_VIEW = """
const stage = document.querySelector(`#request-${arguments[0]} .stage[data-stage="${arguments[1]}"]`);
if (!stage) return null;
const chip = stage.querySelector('.task[data-configuration="main"]'), bar = stage.querySelector("progress");
return {classes: stage.className.split(" "), spinner: !!chip.querySelector(".spinner"),
        elapsed: chip.querySelector(".elapsed") ? chip.querySelector(".elapsed").textContent : null,
        value: bar.getAttribute("value"), max: bar.getAttribute("max")};
"""


def stage_view(browser, request_id: int, name: str):
    """What the row of `request_id` shows of stage `name`, read in one go (page.js may replace the row)."""
    return browser.execute_script(STAGE_VIEW, request_id, name)


def test_a_request_in_its_hardware_stage_shows_it_running_then_done_live(server, browser, hardware):
    rid = hardware.request.id
    served = server.call("GET", "/")
    assert served.status == 200 and served.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in served.headers["content-security-policy"]
    assert re.search(rf'<tr id="request-{rid}"[^>]*>.*?<div class="stage state-building" data-stage="hardware"',
                     served.text), "the server renders the running stage without any script"

    open_page(browser, server)
    hardware_stage = stage_view(browser, rid, "hardware")
    assert "state-building" in hardware_stage["classes"] and hardware_stage["spinner"], hardware_stage
    elapsed = hardware_stage["elapsed"]  # started 12 s before, counting
    assert re.fullmatch(r"\d+ s|\d+ min \d+ s", elapsed) and int(elapsed.split()[0]) >= 12, elapsed
    assert (hardware_stage["value"], hardware_stage["max"]) == ("0", "1")
    build_stage = stage_view(browser, rid, "build")
    assert "state-succeeded" in build_stage["classes"] and not build_stage["spinner"]
    assert (build_stage["value"], build_stage["max"]) == ("1", "1")
    browser.execute_script("window.__same_page = 1")

    hardware.finish_task("hardware", passed=True)  # TASK_COMPLETE, TASK_SUCCESS, STAGE_COMPLETE

    done = wait(browser, lambda d: (lambda v: v if "state-succeeded" in v["classes"] else None)(
        stage_view(d, rid, "hardware")), "the hardware stage did not turn succeeded over the event stream")
    assert not done["spinner"] and done["value"] == "1", done
    assert browser.execute_script("return window.__same_page") == 1, "updated without a reload"
    assert browser.find_element(By.CSS_SELECTOR, "#lab-view .no-lab").text == "no lab"  # no lab here
    assert server.call("GET", "/api/lab").json == {"lab": "none", "server": None, "problems": [], "pools": []}


def test_markup_from_a_request_a_reason_a_log_or_notes_shows_as_text(server, browser):
    build = Build.start(server.root, component="planner", version=HOSTILE, requested_by="ci <b>planner</b>")
    task = build.start_task("build")
    test_log = Path(task.log_path).with_suffix(".testlogs") / "x_test.test.log"
    test_log.parent.mkdir()
    test_log.write_text(HOSTILE_LOG)
    build.finish_task("build", passed=False, detail="<i>tests failed</i>", targets=[
        TargetOutcome(label=HOSTILE_LABEL, status="failed", duration_ms=10, log_paths=(str(test_log),))])
    build.reject("build", HOSTILE_REASON)
    with open_store(server.root) as store, store.transaction() as tx:
        requests.record_release(tx, None, None, tag="v2026.06.1", commit="d" * 40, notes=HOSTILE_NOTES, by_hand=True)
    build.close()

    served = server.call("GET", "/").text
    for text in (HOSTILE, HOSTILE_REASON, HOSTILE_LABEL, "<script>window.__pwned=5"):
        assert text not in served
    assert html.escape(HOSTILE) in served and html.escape(HOSTILE_REASON) in served

    open_page(browser, server)
    failure = browser.find_element(By.ID, f"failure-{build.request.id}")
    browser.execute_script("arguments[0].__server_rendered = 1", failure)
    with open_store(server.root) as store, store.transaction() as tx:  # a hostile request arrives while we watch
        queued, _, _ = requests.queue(tx, requests.Submission(
            component="planner", version=HOSTILE, commit="e" * 40, commit_given=True, archive_url=None,
            strip_prefix=None, configuration=None, requested_by="webhook <script>window.__pwned=6</script>"))
    row = wait(browser, lambda d: d.find_elements(By.ID, f"request-{queued.id}"), "the new request has no row")[0]
    failure = browser.find_element(By.ID, f"failure-{build.request.id}")
    assert not browser.execute_script("return arguments[0].__server_rendered", failure), "page.js rendered it"

    assert HOSTILE in row.find_element(By.CSS_SELECTOR, ".bump").text
    assert "by webhook <script>window.__pwned=6</script>" in row.text
    assert HOSTILE in failure.find_element(By.CSS_SELECTOR, ".bump").text
    assert failure.find_element(By.CSS_SELECTOR, ".reason").text == HOSTILE_REASON
    assert failure.find_element(By.CSS_SELECTOR, ".label").text == HOSTILE_LABEL
    assert "<script>window.__pwned=5</script>" in browser.find_element(By.ID, "release-list").text
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script, main b, main i")
    no_script_ran(browser)

    link = failure.find_element(By.CSS_SELECTOR, "a.log").get_attribute("href")
    browser.get(link)  # the log's tail, as text/plain
    assert browser.find_element(By.TAG_NAME, "body").text == HOSTILE_LOG.strip()
    no_script_ran(browser)

    open_page(browser, server, f"/requests/{build.request.id}")  # its timeline page, rendered and redrawn
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "svg.timeline rect.bar"), "no timeline was drawn")
    assert browser.find_element(By.CSS_SELECTOR, "#request .bump").text == f"planner {HOSTILE}"
    assert browser.find_element(By.ID, "request-detail").text == HOSTILE_REASON
    no_script_ran(browser)


def test_a_log_tail_is_read_only_from_convoys_logs(server, hardware):
    rid = hardware.request.id
    (task,) = hardware.tasks("hardware")
    reply = server.call("GET", f"/api/requests/{rid}/logs/{task.id}")
    assert reply.status == 200, reply.text
    assert (reply.json["name"], reply.json["text"], reply.json["truncated"]) == (
        "hardware-main.log", "INFO: running hardware for main\n", False)
    assert server.call("GET", f"/api/requests/{rid + 1}/logs/{task.id}").status == 404  # another request's task
    assert server.call("GET", f"/api/requests/{rid}/logs/{task.id}?file=1").status == 404
    with hardware.store.read() as tx:
        tail = tx.task(task.id).log_tail  # what the task's end kept in the store (convoy.task_logs)
    for elsewhere in ("/etc/passwd", str(server.root / ".convoy" / "logs" / ".." / "state.db")):
        with hardware.store.transaction() as tx:  # a path in the store that points elsewhere is never read
            tx.update_task(task.id, log_path=elsewhere)
        reply = server.call("GET", f"/api/requests/{rid}/logs/{task.id}")
        if tail is None:
            assert reply.status == 404, reply.text
        else:  # the store's tail of the real log instead, never the file the path names
            assert (reply.status, reply.json["source"], reply.json["text"]) == (200, "store", tail), reply.text
        text = server.call("GET", f"/api/requests/{rid}/logs/{task.id}?format=text")
        assert "root:" not in text.text and "SQLite" not in text.text


TIMELINE_BARS = """
const bars = Array.from(document.querySelectorAll("svg.timeline rect.bar"));
return bars.length ? bars.map(b => ({label: b.getAttribute("data-label"), classes: b.getAttribute("class").split(" "),
                                     x: parseFloat(b.getAttribute("x"))})) : null;
"""


def test_a_requests_page_draws_its_stages_on_a_time_axis(server, browser, hardware):
    open_page(browser, server, f"/requests/{hardware.request.id}")
    bars = wait(browser, lambda d: d.execute_script(TIMELINE_BARS), "no timeline was drawn")
    stages = [b for b in bars if "stage" in b["classes"]]
    assert [b["label"] for b in stages] == ["build", "integration", "configuration", "hardware"]
    tasks = [b for b in bars if "task" in b["classes"]]
    assert len(tasks) == 4 and all("state-succeeded" in t["classes"] for t in tasks), tasks
    lefts = [b["x"] for b in stages]
    assert lefts == sorted(lefts) and lefts[-1] > lefts[0], "later stages start further right"
    assert "messages v1.1.0" in browser.find_element(By.ID, "request").text
    no_script_ran(browser)


def test_a_screenshot_of_the_status_page(server, browser, tmp_path_factory):
    open_page(browser, server)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#failure-list .failure"), "no failure shown")
    directory = Path(os.environ.get("CONVOY_SCREENSHOT_DIR") or tmp_path_factory.getbasetemp())
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "convoy-status-page.png"
    assert browser.save_screenshot(str(path))
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    print(f"screenshot of the status page: {path}")
