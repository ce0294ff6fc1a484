"""`convoy process`: test the queued requests one at a time; merge and tag, or reject.

    convoy process              # until the queue is empty (same as --all)
    convoy process --once       # one request (an interrupted one first), then stop
                                # (or, with no request waiting, one try: convoy try)
    convoy process --forever    # keep going; look at the queue every --poll_interval seconds

While the queue is paused (`convoy pause`) it finishes what is in flight
and starts nothing new (--forever waits for `convoy resume`); once a
draining queue (`convoy drain`) has nothing in flight it exits 0, saying so.

When no request is queued or in flight, it runs the waiting tries (`convoy
try`), one at a time; a request that arrives stops the try, which runs
again later. Prints a line per event (request, stage, task, configuration,
elapsed time, outcome). Exit status 0 unless the driver itself failed: a rejected
request is the queue doing its job. Resumes whatever a killed `convoy
process` left half done (see convoy.queue). Ctrl-C (or SIGTERM) stops
the Bazel runs under way; the next `convoy process` runs those tasks again.

On a store that several workers share (`store:` in convoy.yaml, or
CONVOY_STORE_URL), one worker schedules the queue; `--forever` on the
others waits on standby (running the tasks offered to spares, with
`queue.spare_workers`) and takes the queue over when its lease expires;
`--all` and `--once` are refused while another live worker holds it
(convoy.queue.lock, convoy.queue.spare; `convoy workers`).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path
from typing import Callable, Optional, Sequence

from convoy.commands import common
from convoy.errors import ConvoyError, StoreUnavailable
from convoy.queue import ProcessLock, QueueContext, open_queue
from convoy.queue.spare import SpareWorker

MAX_POLL_INTERVAL = 86400.0  # seconds
MODES = ("once", "all", "forever")


def add_flags(parser: common.Parser) -> None:
    common.add_repo(parser)
    parser.boolean("once", False, "Process one request, then stop.")
    parser.boolean("all", False, "Process requests until the queue is empty (the default).")
    parser.boolean("forever", False, "Keep processing; wait --poll_interval seconds when the queue is empty.")
    parser.number("poll_interval", None, "Seconds between looks at an empty queue with --forever "
                  "(default: queue.poll_interval of convoy.yaml).")


def run(opts: argparse.Namespace, args: list[str]) -> int:
    chosen = [name for name in MODES if getattr(opts, name)]
    poll_interval, repo = opts.poll_interval, opts.repo
    common.no_arguments("process", args)
    mode = check_mode(chosen)
    check_poll_interval(poll_interval)
    process(common.checkout(repo), mode=mode, poll_interval=poll_interval)
    return 0


def check_mode(chosen: Sequence[str]) -> str:
    """The one mode of `chosen` (names of MODES), "all" if none; ConvoyError if several."""
    if len(chosen) > 1:
        raise ConvoyError(f"--{' and --'.join(chosen)} exclude each other; pass one of --once, --all, --forever")
    return chosen[0] if chosen else "all"


def check_poll_interval(poll_interval: Optional[float]) -> None:
    if poll_interval is not None and not 0 < poll_interval <= MAX_POLL_INTERVAL:  # NaN fails too
        raise ConvoyError(f"--poll_interval={poll_interval:g} must be more than 0 and at most "
                          f"{MAX_POLL_INTERVAL:g} seconds; e.g. --poll_interval=10")


def process(root: Path, *, mode: str = "all", poll_interval: Optional[float] = None) -> int:
    """Runs the queue of the checkout `root` in `mode` (one of MODES),
    printing a line per event; returns how many requests it took. Waits
    `poll_interval` seconds (default: convoy.yaml's) between looks at an
    empty queue with "forever". One process per checkout (ProcessLock).

    With "forever" on a shared store, a worker waits on standby while
    another holds the queue's lease, and goes back to standby when it loses
    the lease or the store (each a new term: a new queue, resumed from the
    store by whichever worker takes it; convoy.queue.lock)."""
    if mode not in MODES:
        raise ConvoyError(f"{mode!r} is not a mode of convoy process (one of: {', '.join(MODES)})")
    check_poll_interval(poll_interval)
    config = common.config(root)
    poll = poll_interval if poll_interval is not None else config.poll_interval
    shutdown = threading.Event()  # Ctrl-C or SIGTERM: this process ends (a lost lease ends only a term)
    terms: list = []
    restore = _handle_signals(shutdown, lambda: [t.stop for t in terms[-1:]])
    done = 0
    try:
        with ProcessLock(root), _store(root, mode, shutdown) as store:
            from convoy.plugins import make_plugins

            while not shutdown.is_set():
                plugins = make_plugins(config.plugins, root, open_store=lambda: common.store(root, readonly=True))
                try:
                    processor = open_queue(QueueContext(root, config, store), plugins=plugins)
                    terms.append(processor)
                    done += _term(processor, mode, poll)
                except StoreUnavailable as e:
                    if mode != "forever" or shutdown.is_set():
                        raise
                    print(f"convoy: {' '.join(str(e).split())}; back to standby until the store is back",
                          flush=True)
                    shutdown.wait(min(poll, 5.0))
                    continue
                if mode == "forever" and processor.lease.lost is not None and not shutdown.is_set():
                    processor.out("convoy: back to standby")
                    continue
                break
    finally:
        restore()
    return done


def _term(processor, mode: str, poll: float) -> int:
    """One term of a queue: the lease taken (standby with --forever), the
    queue run in `mode` until it stops; how many requests it took."""
    done = tried = 0
    spare = SpareWorker(processor.ctx.checkout, processor.ctx.config, processor.ctx.store,
                        owner=processor.lease.owner, out=processor.out, stop=processor.stop)
    if not processor.start(standby=_standby(processor) if mode == "forever" else None,
                           idle=spare.work_once if mode == "forever" else None):
        processor.out("convoy: stopped on standby; nothing of the queue ran here")
        return done
    try:
        processor.recover()
        said = drained = None  # the pause last reported (--forever says it once); the drain that ended it
        while not processor.stop.is_set():
            if processor.step() is not None:
                done += 1
                if mode == "once":
                    break
                continue
            if processor.try_step() is not None:  # only when no request waits (convoy try)
                tried += 1
                if mode == "once":
                    break
                continue
            held = processor.held()
            if held.draining:
                drained = held
                break
            if held.paused and held != said and mode == "forever":
                processor.out(f"convoy: {held.line()}; nothing new starts until: convoy resume")
            said = held if held.paused else None
            if mode != "forever":
                break
            processor.stop.wait(poll)
        if processor.lease.lost is not None:
            return done  # said by the queue (QueueManager._lost)
        held = processor.held()
        if processor.stop.is_set():
            processor.out("convoy: stopped; the next convoy process resumes where this one left off")
        elif drained is not None:
            processor.out(f"convoy: drained: nothing is in flight; {drained.line()}; it starts nothing new "
                          "until: convoy resume")
        elif held.paused and mode != "forever":
            processor.out(f"convoy: {held.line()}; nothing new starts until: convoy resume")
        elif done == 0 and tried == 0:
            processor.out("convoy: the queue is empty")
        if processor.internal_errors:
            processor.out(f"convoy: {processor.internal_errors} request(s) ended in error because of a bug "
                          "in convoy (see convoy status); please report the crash logs they name")
    finally:
        processor.finish()
    return done


@contextlib.contextmanager
def _store(root: Path, mode: str, shutdown: threading.Event):
    """The queue's store; with --forever, waited for while it cannot be reached."""
    said = False
    while True:
        try:
            store = common.store(root, create=True)
            break
        except StoreUnavailable as e:
            if mode != "forever" or shutdown.is_set():
                raise
            if not said:
                print(f"convoy: standby: {' '.join(str(e).split())}; waiting for it", flush=True)
                said = True
            shutdown.wait(2.0)
    with store:
        yield store


def _standby(processor):
    """What --forever says while it waits for the queue's lease (Lease.take's line)."""
    return lambda line: processor.out(f"convoy: standby: {line}")


def _handle_signals(stop: threading.Event, also: Callable[[], list] = list):
    """Ctrl-C and SIGTERM set `stop` and the events `also()` gives (the running term's)."""
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
        for event in also():
            event.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore():
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
