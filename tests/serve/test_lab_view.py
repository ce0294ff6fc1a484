"""`GET /api/lab` and the status page never wait for the lab (convoy/serve/lab_view.py).

Each test starts its own `convoy serve` (tests/serve/conftest.py) over a
checkout whose `.convoy/lab/lab.json` names a lab as `convoy lab up` writes
it, so the server's background asker is the test's alone:

- a hung lab: its server is a real TCP server that accepts every
  connection and never answers (a process of its own, which lab.json names
  as the lab's server, so `convoy lab status` sees it running and asks it,
  through the lab's Python, as it would ask BuildGrid). Every answer comes
  within a couple of seconds, and says the lab is not answering;
- a lab that is down (its server's process is gone): the answer, once the
  background ask has it, with when it came and its age.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid

import pytest

from convoy.lab import pools

from tests.serve.conftest import make_checkout, server_env, start_server, stop_server

QUICK = 2.0  # seconds within which every answer must come, whatever the lab does

HUNG_SERVER = r"""
import socket, sys
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", 0))
server.listen(16)
print(server.getsockname()[1], flush=True)
held = []
while True:  # accepts every connection, then never reads, answers or closes it
    connection, _ = server.accept()
    held.append(connection)
"""


def write_lab(root, server: str, pid: int, marker: str) -> None:
    """lab.json as `convoy lab up` leaves it: the server's address and its process (pid, command-line marker)."""
    (root / ".convoy").mkdir(mode=0o700, exist_ok=True)
    lab = root / ".convoy" / "lab"
    lab.mkdir(exist_ok=True)
    (lab / "lab.json").write_text(json.dumps({"server": server, "rigs": "", "general": 0, "processes": {
        "server": {"pid": pid, "marker": marker}}}))


def timed(server, path: str):
    started = time.monotonic()
    reply = server.call("GET", path, timeout=10)
    return reply, time.monotonic() - started


@pytest.fixture
def hung_lab():
    """A TCP server that accepts and never answers; yields (its process, its port, a marker in its command line)."""
    if not pools.LabAddress().python.exists():  # without it every ask fails at once: nothing would hang
        pytest.fail(f"{pools.LabAddress().python} is missing; this test asks a lab through it. Run: bash scripts/setup")
    marker = f"convoy-test-hung-lab-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-c", HUNG_SERVER, marker], stdout=subprocess.PIPE, text=True)
    try:
        yield proc, int(proc.stdout.readline()), marker
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()


class Served:
    """A checkout of its own (`root`), where the test writes lab.json before `start()` starts convoy serve."""

    def __init__(self, forge, base) -> None:
        self.forge, self.base = forge, base
        self.root = make_checkout(forge, base)
        self.server = None

    def start(self):
        self.server = start_server(self.root, server_env(self.forge), self.base / "serve.log")
        return self.server


@pytest.fixture
def served(forge, tmp_path):
    made = Served(forge, tmp_path)
    yield made
    if made.server is not None:
        stop_server(made.server.proc)


def test_a_hung_lab_server_is_not_answering_and_no_request_waits_for_it(served, hung_lab):
    proc, port, marker = hung_lab
    write_lab(served.root, f"127.0.0.1:{port}", proc.pid, marker)
    server = served.start()  # asks the lab as it starts: that ask hangs (the lab's Python waits 10 s, convoy 60 s)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # for 3 s: every answer at once, and the ask still hangs
        reply, took = timed(server, "/api/lab")
        assert reply.status == 200 and took < QUICK, (reply.status, took)
        lab = reply.json
        assert (lab["lab"], lab["server"], lab["pools"], lab["checked_at"]) == (
            "not answering", f"127.0.0.1:{port}", [], None)
        assert lab["problems"][0].startswith(f"the lab at 127.0.0.1:{port} has not answered yet (asked ")
        time.sleep(0.3)
    page, took = timed(server, "/")
    assert page.status == 200 and took < QUICK, (page.status, took)
    assert f"lab not answering at 127.0.0.1:{port}" in page.text
    assert f"the lab at 127.0.0.1:{port} has not answered yet" in page.text

    answers: list = []  # several at once: none waits behind another (nor behind the lab)

    def ask(path: str) -> None:
        answers.append((path, *timed(server, path)))

    threads = [threading.Thread(target=ask, args=(p,)) for p in ("/api/lab", "/", "/api/lab", "/api/status")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted((path, reply.status, took < QUICK) for path, reply, took in answers) == [
        ("/", 200, True), ("/api/lab", 200, True), ("/api/lab", 200, True), ("/api/status", 200, True)]
    assert proc.poll() is None  # the hung server was there all along


def test_a_lab_that_answers_is_shown_with_its_age(served):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=10)  # the lab's server process: gone, so the lab is down (and nothing is asked)
    write_lab(served.root, "127.0.0.1:9", gone.pid, "buildgrid.yml")
    server = served.start()
    deadline, lab = time.monotonic() + 10, None
    while time.monotonic() < deadline:
        reply, took = timed(server, "/api/lab")
        assert reply.status == 200 and took < QUICK, (reply.status, took)
        lab = reply.json
        if lab["lab"] != "not answering":
            break
        time.sleep(0.1)
    assert (lab["lab"], lab["server"], lab["problems"], lab["pools"]) == ("down", "127.0.0.1:9", [], [])
    assert time.time() - 30 < lab["checked_at"] <= time.time() and 0 <= lab["age_seconds"] < 30
    time.sleep(1.1)
    again = server.call("GET", "/api/lab").json  # the same answer (reused for 10 s), older
    assert again["checked_at"] == lab["checked_at"] and again["age_seconds"] >= lab["age_seconds"] + 1
    assert "lab down at 127.0.0.1:9" in server.call("GET", "/").text
