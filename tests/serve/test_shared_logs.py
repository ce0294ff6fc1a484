"""The status page's log view of a task another worker ran (issue 24, "Logs"): a real `convoy serve`
over a checkout whose convoy.yaml sets `logs_url: shared-logs` (relative: in the checkout). The task
ends through the queue's own TaskRunner.finish (tests/serve/page_support.py), which keeps the log's
tail in the store and copies the log there. When the local file is gone, GET .../logs/<task> serves
the shared copy; when that is gone too, the store's tail; a path in the store that is not one of
convoy's logs is still never read.
"""

from __future__ import annotations

import pytest

from tests.serve.conftest import CONFIG, make_checkout, server_env, start_server, stop_server
from tests.serve.page_support import Build

LOG = "INFO: running build for main\n" + "".join(f"ERROR: step {n} failed\n" for n in range(80))  # 1.7 KiB


@pytest.fixture(scope="module")
def shared_server(forge, tmp_path_factory):
    base = tmp_path_factory.mktemp("shared-logs")
    root = make_checkout(forge, base, config=CONFIG + "logs_url: shared-logs\n")
    running = start_server(root, server_env(forge), base / "serve.log")
    yield running
    stop_server(running.proc)


def test_the_log_view_falls_back_to_the_shared_copy_then_to_the_tail(shared_server):
    build = Build.start(shared_server.root, version="v1.1.0")
    try:
        task = build.start_task("build")
        local = shared_server.root / ".convoy" / "logs" / f"request-{build.request.id}" / "build-1" / "build-main.log"
        assert task.log_path == str(local)
        local.write_text(LOG)
        build.finish_task("build", passed=False, detail="tests failed")
        (task,) = build.tasks("build")
        copy = shared_server.root / "shared-logs" / f"request-{build.request.id}" / "build-1" / "build-main.log"
        assert copy.read_text() == LOG and task.log_tail == LOG  # copied at the end; the tail in the store
        path = f"/api/requests/{build.request.id}/logs/{task.id}"

        reply = shared_server.call("GET", path)
        assert reply.status == 200 and (reply.json["source"], reply.json["text"]) == ("local", LOG)
        local.unlink()  # as on a machine that did not run the task
        reply = shared_server.call("GET", path + "?kib=1")
        assert reply.status == 200, reply.text
        assert (reply.json["source"], reply.json["name"], reply.json["size"]) == ("shared", "build-main.log", len(LOG))
        assert reply.json["truncated"] and LOG.endswith(reply.json["text"]) and reply.json["text"].startswith("ERROR")
        shown = shared_server.call("GET", f"/api/requests/{build.request.id}").json
        [shown_task] = [t for s in shown["builds"][0]["stages"] if s["name"] == "build" for t in s["tasks"]]
        assert (shown_task["log_readable"], shown_task["shared_log"], shown_task["log_tail"]) == (False, str(copy), LOG)

        copy.unlink()
        reply = shared_server.call("GET", path + "?format=text")
        assert reply.status == 200 and reply.text == LOG  # the store's tail
        assert shared_server.call("GET", path).json["source"] == "store"

        with build.store.transaction() as tx:  # a path that is not convoy's: never read, only the stored tail
            tx.update_task(task.id, log_path="/etc/passwd")
        reply = shared_server.call("GET", path + "?format=text")
        assert reply.status == 200 and reply.text == LOG and "root:" not in reply.text
        with build.store.transaction() as tx:
            tx.update_task(task.id, log_tail=None)
        assert shared_server.call("GET", path).status == 404
    finally:
        build.close()
