"""`convoy process`: test the queued requests one at a time; merge and tag, or reject.

    convoy process              # until the queue is empty (same as --all)
    convoy process --once       # one request (an interrupted one first), then stop
    convoy process --forever    # keep going; look at the queue every --poll_interval seconds

Prints a line per event (request, stage, task, configuration, elapsed time,
outcome). Exit status 0 unless the driver itself failed: a rejected
request is the queue doing its job. Resumes whatever a killed `convoy
process` left half done (see convoy.processor). Ctrl-C (or SIGTERM) stops
the Bazel runs under way; the next `convoy process` runs those tasks again.
"""

from __future__ import annotations

import signal
import threading

from absl import flags

from convoy.commands import common
from convoy.errors import ConvoyError
from convoy.processor import ProcessLock, Processor, StuckError

FLAGS = flags.FLAGS
MAX_POLL_INTERVAL = 86400.0  # seconds
flags.DEFINE_bool("once", False, "Process one request, then stop.")
flags.DEFINE_bool("all", False, "Process requests until the queue is empty (the default).")
flags.DEFINE_bool("forever", False, "Keep processing; wait --poll_interval seconds when the queue is empty.")
flags.DEFINE_float("poll_interval", None, "Seconds between looks at an empty queue with --forever "
                   "(default: queue.poll_interval of convoy.yaml).")


def run(args: list[str]) -> int:
    common.no_arguments("process", args)
    modes = [name for name in ("once", "all", "forever") if getattr(FLAGS, name)]
    if len(modes) > 1:
        raise ConvoyError(f"--{' and --'.join(modes)} exclude each other; pass one of --once, --all, --forever")
    mode = modes[0] if modes else "all"
    if FLAGS.poll_interval is not None and not 0 < FLAGS.poll_interval <= MAX_POLL_INTERVAL:  # NaN fails too
        raise ConvoyError(f"--poll_interval={FLAGS.poll_interval:g} must be more than 0 and at most "
                          f"{MAX_POLL_INTERVAL:g} seconds; e.g. --poll_interval=10")
    root = common.checkout()
    config = common.config(root)
    poll = FLAGS.poll_interval if FLAGS.poll_interval is not None else config.poll_interval
    with ProcessLock(root), common.store(root, create=True) as store:
        from convoy.plugins import make_plugins

        processor = Processor(root, config, store, plugins=list(make_plugins(config.plugins, root)))
        restore = _handle_signals(processor.stop)
        try:
            processor.start()
            try:
                processor.recover()
                done = 0
                while not processor.stop.is_set():
                    if processor.step() is not None:
                        done += 1
                        if mode == "once":
                            break
                        continue
                    if mode != "forever":
                        break
                    processor.stop.wait(poll)
                if processor.stop.is_set():
                    processor.out("convoy: stopped; the next convoy process resumes where this one left off")
                elif done == 0:
                    processor.out("convoy: the queue is empty")
                if processor.internal_errors:
                    processor.out(f"convoy: {processor.internal_errors} request(s) ended in error because of a bug "
                                  "in convoy (see convoy status); please report the crash logs they name")
            finally:
                processor.finish()
        except StuckError:
            raise
        finally:
            restore()
    return 0


def _handle_signals(stop: threading.Event):
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        if stop.is_set():  # a second Ctrl-C: stop now
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        try:
            print(f"convoy: {signal.Signals(signum).name}: stopping the running Bazel commands...", flush=True)
        except OSError:
            pass
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore():
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
