"""`convoy serve --process`: the queue processed inside the service, by a child `convoy process --forever`.

    with Processor(root, log) as processor:   # starts `convoy process --forever --repo=<root>`
        server.run(...)                         # its output goes to serve's log, line by line
    # leaving: SIGTERM to the child (it stops its builds the way it does on
    # Ctrl-C, and the next start resumes them), then SIGKILL after STOP_SECONDS

The child is the same program as `convoy process --forever` beside `convoy
serve`: one process lock, one store, the same crash safety. A child that
ends on its own (exit status, or a signal) is logged with its status and
not started again: a queue that cannot run (a bad convoy.yaml, a held
process lock) should be seen, not retried in a loop; the service goes on
serving reads and submits.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Optional

from convoy.untrusted import printable

STOP_SECONDS = 30  # the child's time to stop its builds after SIGTERM


class Processor:
    """A child `convoy process --forever` for the checkout `root`, its output on `log`."""

    def __init__(self, root: Path, log: logging.Logger) -> None:
        self.root = root
        self.log = log
        self.proc: Optional[subprocess.Popen] = None
        self._reader: Optional[threading.Thread] = None
        self._stopping = False

    def __enter__(self) -> "Processor":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "CONVOY_FAILPOINT"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "convoy", "process", "--forever", f"--repo={self.root}"], cwd=self.root,
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            errors="replace", start_new_session=True)
        self.log.info("processing the queue: convoy process --forever (pid %d)", self.proc.pid)
        self._reader = threading.Thread(target=self._read, name="convoy-process-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.info("process: %s", printable(line.rstrip("\n")))
        code = self.proc.wait()
        if not self._stopping:
            self.log.warning("convoy process ended by itself (exit %s); the queue is not processed until convoy serve "
                             "--process starts again (or convoy process runs beside it)", code)

    def stop(self) -> Optional[int]:
        """Stops the child (SIGTERM, then SIGKILL after STOP_SECONDS); its exit status."""
        if self.proc is None:
            return None
        self._stopping = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        self.log.info("convoy process stopped (exit %s)", self.proc.returncode)
        return self.proc.returncode
