"""The status page and a request's page, rendered on the server from the API's JSON.

    status_page(status_json, releases_json, lab_json)   # GET /: the queue, failures, releases, the lab
    request_page(show_json)                            # GET /requests/{id}: the shell its timeline is drawn in

Each part here has its twin in static/page.js, which renders the same
markup from the same JSON when the event stream says something changed
(`renderRow` is `request_row`, `renderFailure` is `failure_item`, ...):
change one, change the other. Every value from the store (a version, a
reason, a note, a label) reaches the page through convoy.serve.html's `el`,
which escapes it; page.js sets only `textContent` and attributes.

The queue is a table with one row per request (`#request-<id>`): what it
bumps, its state, its stages (a bar per stage that fills as its tasks end,
one chip per configuration, a spinner and the time so far on the tasks
that run), its time and its estimate. Failed requests list their failing
targets with links to their log tails (convoy.serve.logs). A paused or
draining queue (convoy.control) is a banner under the header
(`#queue-control`: why, by whom, since when); a high-priority request has a
"high priority" mark in its state.
"""

from __future__ import annotations

import datetime
from typing import Any, Iterable, Optional

from convoy import models
from convoy.serve.html import Markup, document, el, token

SCRIPT = "/static/page.js"
STYLE = "/static/page.css"
FINAL_TASKS = ("succeeded", "failed", "skipped")
FAILED = ("rejected", "error")
RELEASES_SHOWN = 10


def seconds(value: Optional[float]) -> str:
    """45 s, 5 min 12 s, 2 h 3 min (page.js: `seconds`)."""
    if value is None:
        return "-"
    s = int(round(value))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def when(ts: Optional[float]) -> str:
    """A timestamp as UTC (page.js: `when`)."""
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def bumps_of(item: dict[str, Any]) -> list[dict[str, Any]]:
    return [item, *(item.get("bumps") or [])]


def what(item: dict[str, Any]) -> Markup:
    """Its bumps, one `component version` each, and who asked."""
    return el("td", {"class": "what"},
              [el("div", {"class": "bump"}, f"{b.get('component')} {b.get('version')}") for b in bumps_of(item)],
              el("div", {"class": "by"}, f"by {item.get('requested_by')}"))


def task_chip(task: dict[str, Any]) -> Markup:
    state = task.get("state")
    running = state == "building"
    if running:
        time = el("span", {"class": "elapsed", "data-started": task.get("started_at")},
                  seconds(task.get("elapsed_seconds")))
    else:
        time = el("span", {"class": "elapsed"}, seconds(task.get("duration"))) if task.get("duration") else None
    return el("li", {"class": f"task state-{token(state)}", "data-configuration": task.get("configuration"),
                     "title": f"{task.get('configuration')}: {state}" + (f" {task['outcome']}" if task.get("outcome")
                                                                          else "")},
              el("span", {"class": "spinner", "aria-label": "running"}) if running else None,
              el("span", {"class": "conf"}, task.get("configuration")), time)


def stage_bar(stage: dict[str, Any]) -> Markup:
    tasks = stage.get("tasks") or []
    done = sum(1 for t in tasks if t.get("state") in FINAL_TASKS)
    total = len(tasks) or 1
    if not tasks and stage.get("state") in FINAL_TASKS:
        done = 1
    return el("div", {"class": f"stage state-{token(stage.get('state'))}", "data-stage": stage.get("name"),
                      "title": f"{stage.get('name')}: {stage.get('state')}"},
              el("div", {"class": "stage-head"}, el("span", {"class": "stage-name"}, stage.get("name"))),
              el("progress", {"max": total, "value": done}, f"{done}/{total}"),
              el("ul", {"class": "tasks"}, [task_chip(t) for t in tasks]))


def request_row(item: dict[str, Any]) -> Markup:
    """One request of the queue (page.js: `renderRow`)."""
    state = item.get("state")
    label = state + (f" \u00b7 {item['phase']}" if item.get("phase") and state == "testing" else "")
    left = item.get("estimate_seconds_left")
    return el("tr", {"id": f"request-{item.get('id')}", "class": f"request state-{token(state)}"},
              el("td", {"class": "id"}, el("a", {"href": f"/requests/{item.get('id')}"}, f"#{item.get('id')}")),
              what(item),
              el("td", {"class": "state"}, el("span", {"class": f"badge state-{token(state)}"}, label),
                 el("span", {"class": "priority"}, "high priority") if item.get("priority") == "high" else None,
                 el("div", {"class": "note"}, item["note"]) if item.get("note") else None),
              el("td", {"class": "stages"}, el("div", {"class": "stages"},
                                               [stage_bar(s) for s in item.get("stages") or []])),
              el("td", {"class": "time"}, el("div", None, seconds(item.get("elapsed_seconds"))),
                 el("div", {"class": "left"}, f"~{seconds(left)} left") if left else None))


def control_banner(control: dict[str, Any]) -> Markup:
    """The queue's pause or drain, if any: why, by whom, since when (page.js: `renderControl`)."""
    word = control.get("state") or "running"
    text = "" if word == "running" else (
        f"Queue {word} by {control.get('by') or 'unknown'} since {when(control.get('since'))}"
        + (f": {control['reason']}" if control.get("reason") else "") + "; nothing new starts until convoy resume")
    return el("p", {"id": "queue-control", "class": f"control state-{token(word)}", "hidden": word == "running"}, text)


def empty_row() -> Markup:
    return el("tr", {"class": "empty"}, el("td", {"colspan": 5}, "The queue is empty."))


def failure_item(item: dict[str, Any]) -> Markup:
    """A failed request: its reason and failing targets with links to their logs (page.js: `renderFailure`)."""
    failure = item.get("failure") or {}
    return el("li", {"class": "failure", "id": f"failure-{item.get('id')}"},
              el("div", {"class": "failure-head"},
                 el("a", {"href": f"/requests/{item.get('id')}"}, f"#{item.get('id')}"), " ",
                 el("span", {"class": "bump"}, ", ".join(f"{b.get('component')} {b.get('version')}"
                                                        for b in bumps_of(item))), " ",
                 el("span", {"class": f"badge state-{token(item.get('state'))}"}, item.get("state")),
                 el("span", {"class": "stage-name"}, f" in {failure['stage']}") if failure.get("stage") else None),
              el("div", {"class": "reason"}, failure.get("reason")),
              el("ul", {"class": "failing"}, [
                  el("li", None, el("span", {"class": "conf"}, f.get("configuration")), " ",
                     el("span", {"class": "label"}, f.get("label") or "(the task)"), " ",
                     el("span", {"class": "status"}, f.get("status")), " ",
                     [el("a", {"class": "log", "href": log.get("url")}, f"log tail: {log.get('name')}")
                      for log in f.get("logs") or []])
                  for f in failure.get("failing") or []]))


def release_item(release: dict[str, Any]) -> Markup:
    """A release: its tag, what it released, when, its notes (page.js: `renderRelease`)."""
    request = release.get("request")
    what = ", ".join(f"{b.get('component')} {b.get('version')}" for b in request.get("all_bumps") or [request]) \
        if request else "tagged by hand"
    return el("li", {"class": "release"},
              el("div", None, el("span", {"class": "tag"}, release.get("tag")), " ",
                 el("span", {"class": "bump"}, what), " ",
                 el("span", {"class": "when"}, when(release.get("created_at")))),
              el("pre", {"class": "notes"}, release.get("notes") or ""))


def lab_view(lab: dict[str, Any]) -> Markup:
    """The lab's pools and workers, or "no lab" (page.js: `renderLab`)."""
    if lab.get("lab") in ("none", "unreachable"):
        return el("div", {"id": "lab-view"}, el("p", {"class": "no-lab"}, "no lab"),
                  [el("p", {"class": "problem"}, p) for p in lab.get("problems") or []])
    pools = []
    for pool in lab.get("pools") or []:
        workers = [el("li", {"class": "worker " + ("busy" if w.get("busy") else "idle") + " "
                             + ("healthy" if w.get("healthy") else "unhealthy")},
                      el("span", {"class": "name"}, w.get("name")), " ",
                      el("span", {"class": "board"}, w.get("board") or "no rig"), " ",
                      el("span", {"class": "health"}, w.get("health")), " ",
                      el("span", {"class": "doing"}, f"running {w['doing']}" if w.get("busy") else "idle"))
                   for w in pool.get("members") or []]
        pools.append(el("div", {"class": "pool", "data-pool": pool.get("name")},
                        el("h3", None, pool.get("name")),
                        el("p", None, f"{pool.get('workers')} workers: {pool.get('busy')} busy, "
                                      f"{pool.get('workers', 0) - pool.get('busy', 0)} idle, "
                                      f"{pool.get('healthy')} healthy"),
                        el("ul", {"class": "workers"}, workers)))
    return el("div", {"id": "lab-view"}, el("p", {"class": "lab-state"}, f"lab {lab.get('lab')} at {lab.get('server')}"),
              pools, [el("p", {"class": "problem"}, p) for p in lab.get("problems") or []])


def _section(name: str, title: str, *children: Any) -> Markup:
    return el("section", {"id": name}, el("h2", None, title), *children)


def status_page(status: dict[str, Any], releases: dict[str, Any], lab: dict[str, Any]) -> str:
    """GET /: the whole page, as it is now; page.js keeps it current."""
    queue = status["queues"][0]
    rows: Iterable[Markup] = [request_row(i) for i in queue["items"]] or [empty_row()]
    failed = [failure_item(i) for i in status.get("recent", []) if i.get("state") in FAILED]
    header = el("header", None, el("h1", None, "convoy"),
                el("span", {"id": "queue-name"}, f"{queue['name']} \u00b7 {queue['mode']}"),
                el("span", {"id": "live", "class": "live-off"}, "connecting"))
    body = el("main", None, header, control_banner(queue.get("control") or {}),
              _section("queue", "Queue", el("table", None, el("thead", None, el("tr", None, [
                  el("th", None, h) for h in ("#", "bumps", "state", "stages", "time")])),
                  el("tbody", {"id": "queue-rows"}, rows))),
              _section("failures", "Failed recently", el("ul", {"id": "failure-list"}, failed)),
              _section("releases", "Releases", el("ul", {"id": "release-list"}, [
                  release_item(r) for r in releases["releases"][:RELEASES_SHOWN]])),
              _section("lab", "Lab", lab_view(lab)))
    attrs = {"data-page": "status", "data-last-event": status["last_event_id"], "data-now": status["now"],
             "data-event-types": " ".join(models.EVENT_TYPES)}
    return document(f"convoy: {queue['name']}", body, body_attrs=attrs, scripts=[SCRIPT], styles=[STYLE])


def request_page(shown: dict[str, Any], last_event_id: int, now: float) -> str:
    """GET /requests/{id}: the request, and its timeline (drawn by page.js from /api/requests/{id})."""
    r = shown["request"]
    bumps = ", ".join(f"{b.get('component')} {b.get('version')}" for b in r.get("all_bumps") or [r])
    state = r.get("state") + (f" \u00b7 {r['phase']}" if r.get("phase") and r.get("state") == "testing" else "")
    rows = [el("tr", None, el("td", None, f"build {b['number']}"), el("td", None, s["name"]),
               el("td", None, t["configuration"]), el("td", None, t["state"], f" {t['outcome']}" if t["outcome"] else ""),
               el("td", None, seconds(t.get("duration"))))
            for b in shown["builds"] for s in b["stages"] for t in s["tasks"]]
    body = el("main", None,
              el("header", None, el("h1", None, el("a", {"href": "/"}, "convoy"), f" \u203a request #{r['id']}"),
                 el("span", {"id": "live", "class": "live-off"}, "connecting")),
              el("section", {"id": "request"},
                 el("p", {"class": "bump"}, bumps),
                 el("p", None, el("span", {"class": f"badge state-{token(r.get('state'))}", "id": "request-state"},
                                  state), f" requested by {r.get('requested_by')} at {when(r.get('created_at'))}"),
                 el("p", {"class": "reason", "id": "request-detail"}, r.get("detail") or "")),
              _section("timeline", "Timeline", el("div", {"id": "timeline-view"},
                                                  el("p", None, "no build yet") if not shown["builds"] else None)),
              _section("tasks", "Tasks", el("table", None, el("tbody", {"id": "task-rows"}, rows))))
    attrs = {"data-page": "request", "data-request": r["id"], "data-last-event": last_event_id, "data-now": now,
             "data-event-types": " ".join(models.EVENT_TYPES)}
    return document(f"convoy: request #{r['id']}", body, body_attrs=attrs, scripts=[SCRIPT], styles=[STYLE])
