// convoy serve's pages: keeps the status page (GET /) and a request's page
// (GET /requests/{id}) current over the event stream, and draws the timeline.
//
// Hand-written, no build step, no library. The server renders each page
// complete (convoy/serve/page_html.py); this script follows
// /api/events/stream and, on an event, fetches the JSON again and renders
// what changed with the twins of page_html's functions (renderRow is
// request_row, renderFailure failure_item, renderRelease release_item,
// renderLab lab_view). Data reaches the page only as textContent or an
// attribute value (el() below): never innerHTML, so a version named
// <script> is text. The Content-Security-Policy allows this file only.
"use strict";

(function () {
  var body = document.body;
  var FINAL_TASKS = ["succeeded", "failed", "skipped"];
  var FAILED = ["rejected", "error"];
  var RELEASES_SHOWN = 10;
  var LAB_EVERY = 15000; // ms between looks at the lab
  var clockSkew = (parseFloat(body.getAttribute("data-now")) - Date.now() / 1000) || 0; // server - browser, s

  // -- building elements: text is text --------------------------------------------------------

  function el(tag, attrs) {
    var node = document.createElement(tag);
    var name;
    for (name in attrs || {}) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
    for (var i = 2; i < arguments.length; i++) add(node, arguments[i]);
    return node;
  }

  function add(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) {
      child.forEach(function (c) { add(node, c); });
    } else if (child instanceof Node) {
      node.appendChild(child);
    } else {
      node.appendChild(document.createTextNode(String(child)));
    }
  }

  function token(value) {
    var word = String(value).toLowerCase().replace(/[^a-z0-9-]+/g, "-").slice(0, 40);
    return word || "none";
  }

  function seconds(value) {
    if (value === null || value === undefined) return "-";
    var s = Math.round(value);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function when(ts) {
    if (ts === null || ts === undefined) return "-";
    return new Date(ts * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function bumpsOf(item) { return [item].concat(item.bumps || []); }

  function bumpText(b) { return b.component + " " + b.version; }

  function replaceChildren(node, children) {
    while (node.firstChild) node.removeChild(node.firstChild);
    add(node, children);
  }

  // -- the status page's parts (twins of page_html.py) ---------------------------------------

  function taskChip(task) {
    var running = task.state === "building";
    var time = null;
    if (running) {
      time = el("span", {"class": "elapsed", "data-started": task.started_at}, seconds(task.elapsed_seconds));
    } else if (task.duration) {
      time = el("span", {"class": "elapsed"}, seconds(task.duration));
    }
    return el("li", {"class": "task state-" + token(task.state), "data-configuration": task.configuration,
                     "title": task.configuration + ": " + task.state + (task.outcome ? " " + task.outcome : "")},
              running ? el("span", {"class": "spinner", "aria-label": "running"}) : null,
              el("span", {"class": "conf"}, task.configuration), time);
  }

  function stageBar(stage) {
    var tasks = stage.tasks || [];
    var done = tasks.filter(function (t) { return FINAL_TASKS.indexOf(t.state) >= 0; }).length;
    var total = tasks.length || 1;
    if (!tasks.length && FINAL_TASKS.indexOf(stage.state) >= 0) done = 1;
    return el("div", {"class": "stage state-" + token(stage.state), "data-stage": stage.name,
                      "title": stage.name + ": " + stage.state},
              el("div", {"class": "stage-head"}, el("span", {"class": "stage-name"}, stage.name)),
              el("progress", {"max": total, "value": done}, done + "/" + total),
              el("ul", {"class": "tasks"}, tasks.map(taskChip)));
  }

  function renderRow(item) {
    var state = item.state;
    var label = state + (item.phase && state === "testing" ? " \u00b7 " + item.phase : "");
    var left = item.estimate_seconds_left;
    return el("tr", {"id": "request-" + item.id, "class": "request state-" + token(state)},
              el("td", {"class": "id"}, el("a", {"href": "/requests/" + item.id}, "#" + item.id)),
              el("td", {"class": "what"}, bumpsOf(item).map(function (b) {
                return el("div", {"class": "bump"}, bumpText(b));
              }), el("div", {"class": "by"}, "by " + item.requested_by)),
              el("td", {"class": "state"}, el("span", {"class": "badge state-" + token(state)}, label),
                 item.priority === "high" ? el("span", {"class": "priority"}, "high priority") : null,
                 item.note ? el("div", {"class": "note"}, item.note) : null),
              el("td", {"class": "stages"}, el("div", {"class": "stages"}, (item.stages || []).map(stageBar))),
              el("td", {"class": "time"}, el("div", null, seconds(item.elapsed_seconds)),
                 left ? el("div", {"class": "left"}, "~" + seconds(left) + " left") : null));
  }

  function renderControl(control) {
    var word = (control && control.state) || "running";
    var text = word === "running" ? "" : "Queue " + word + " by " + (control.by || "unknown") + " since " +
      when(control.since) + (control.reason ? ": " + control.reason : "") + "; nothing new starts until convoy resume";
    return el("p", {"id": "queue-control", "class": "control state-" + token(word), "hidden": word === "running"},
              text);
  }

  function renderFailure(item) {
    var failure = item.failure || {};
    return el("li", {"class": "failure", "id": "failure-" + item.id},
              el("div", {"class": "failure-head"},
                 el("a", {"href": "/requests/" + item.id}, "#" + item.id), " ",
                 el("span", {"class": "bump"}, bumpsOf(item).map(bumpText).join(", ")), " ",
                 el("span", {"class": "badge state-" + token(item.state)}, item.state),
                 failure.stage ? el("span", {"class": "stage-name"}, " in " + failure.stage) : null),
              el("div", {"class": "reason"}, failure.reason),
              el("ul", {"class": "failing"}, (failure.failing || []).map(function (f) {
                return el("li", null, el("span", {"class": "conf"}, f.configuration), " ",
                          el("span", {"class": "label"}, f.label || "(the task)"), " ",
                          el("span", {"class": "status"}, f.status), " ",
                          (f.logs || []).map(function (log) {
                            return el("a", {"class": "log", "href": safeUrl(log.url)}, "log tail: " + log.name);
                          }));
              })));
  }

  function safeUrl(url) { return /^\/api\//.test(url || "") ? url : "#"; } // only this server's log links

  function renderRelease(release) {
    var request = release.request;
    var what = request ? (request.all_bumps && request.all_bumps.length ? request.all_bumps : [request])
      .map(bumpText).join(", ") : "tagged by hand";
    return el("li", {"class": "release"},
              el("div", null, el("span", {"class": "tag"}, release.tag), " ", el("span", {"class": "bump"}, what),
                 " ", el("span", {"class": "when"}, when(release.created_at))),
              el("pre", {"class": "notes"}, release.notes || ""));
  }

  function renderLab(lab) {
    var problems = (lab.problems || []).map(function (p) { return el("p", {"class": "problem"}, p); });
    if (lab.lab === "none" || lab.lab === "unreachable") {
      return el("div", {"id": "lab-view"}, el("p", {"class": "no-lab"}, "no lab"), problems);
    }
    var pools = (lab.pools || []).map(function (pool) {
      var workers = (pool.members || []).map(function (w) {
        return el("li", {"class": "worker " + (w.busy ? "busy" : "idle") + " " + (w.healthy ? "healthy" : "unhealthy")},
                  el("span", {"class": "name"}, w.name), " ", el("span", {"class": "board"}, w.board || "no rig"), " ",
                  el("span", {"class": "health"}, w.health), " ",
                  el("span", {"class": "doing"}, w.busy ? "running " + w.doing : "idle"));
      });
      return el("div", {"class": "pool", "data-pool": pool.name}, el("h3", null, pool.name),
                el("p", null, pool.workers + " workers: " + pool.busy + " busy, " + (pool.workers - pool.busy) +
                   " idle, " + pool.healthy + " healthy"),
                el("ul", {"class": "workers"}, workers));
    });
    return el("div", {"id": "lab-view"}, el("p", {"class": "lab-state"}, "lab " + lab.lab + " at " + lab.server),
              pools, problems);
  }

  // -- fetching and rendering ---------------------------------------------------------------------

  function getJSON(url) {
    return fetch(url, {headers: {"Accept": "application/json"}, cache: "no-store"}).then(function (r) {
      if (!r.ok) throw new Error(url + ": " + r.status);
      return r.json();
    });
  }

  var shownRows = {}; // request id -> the JSON its row was rendered from

  function renderStatus(status) {
    clockSkew = status.now - Date.now() / 1000;
    var banner = document.getElementById("queue-control");
    if (banner) banner.parentNode.replaceChild(renderControl(status.queues[0].control), banner);
    var tbody = document.getElementById("queue-rows");
    var items = status.queues[0].items;
    var wanted = {};
    items.forEach(function (item) { wanted[item.id] = true; });
    Array.prototype.slice.call(tbody.children).forEach(function (row) {
      var id = (row.id || "").replace("request-", "");
      if (!wanted[id]) { tbody.removeChild(row); delete shownRows[id]; }
    });
    items.forEach(function (item, index) {
      var json = JSON.stringify(item, function (k, v) { return k === "elapsed_seconds" || k === "age_seconds" ? 0 : v; });
      var row = document.getElementById("request-" + item.id);
      if (!row || shownRows[item.id] !== json) {
        var fresh = renderRow(item);
        if (row) tbody.replaceChild(fresh, row);
        row = fresh;
        shownRows[item.id] = json;
      }
      if (tbody.children[index] !== row) tbody.insertBefore(row, tbody.children[index] || null);
    });
    if (!items.length) {
      replaceChildren(tbody, el("tr", {"class": "empty"}, el("td", {"colspan": 5}, "The queue is empty.")));
    }
    var failed = status.recent.filter(function (i) { return FAILED.indexOf(i.state) >= 0; });
    replaceChildren(document.getElementById("failure-list"), failed.map(renderFailure));
  }

  function refreshStatus() {
    return getJSON("/api/status").then(renderStatus);
  }

  function refreshReleases() {
    return getJSON("/api/releases?limit=" + RELEASES_SHOWN).then(function (data) {
      replaceChildren(document.getElementById("release-list"), data.releases.map(renderRelease));
    });
  }

  function refreshLab() {
    return getJSON("/api/lab").then(function (lab) {
      var old = document.getElementById("lab-view");
      old.parentNode.replaceChild(renderLab(lab), old);
    });
  }

  function tick() { // the time so far of what runs, every second
    var now = Date.now() / 1000 + clockSkew;
    Array.prototype.forEach.call(document.querySelectorAll(".elapsed[data-started]"), function (span) {
      var started = parseFloat(span.getAttribute("data-started"));
      if (!isNaN(started)) span.textContent = seconds(Math.max(0, now - started));
    });
  }

  // -- the event stream: reconnects on error, refreshes once per burst of events ------------------

  function follow(onEvents) {
    var live = document.getElementById("live");
    var last = body.getAttribute("data-last-event") || "0";
    var types = (body.getAttribute("data-event-types") || "").split(" ").filter(Boolean);
    var pending = null, source = null;

    function setLive(on, text) {
      live.className = on ? "live-on" : "live-off";
      live.textContent = text;
    }

    function seen(message) {
      if (message.lastEventId) last = message.lastEventId;
      var event = null;
      try { event = JSON.parse(message.data); } catch (e) { event = null; }
      if (pending === null) {
        pending = [];
        setTimeout(function () {
          var batch = pending;
          pending = null;
          onEvents(batch).catch(function () { setLive(false, "update failed; retrying"); });
        }, 200);
      }
      if (event) pending.push(event);
    }

    function connect() {
      source = new EventSource("/api/events/stream?after=" + encodeURIComponent(last));
      source.onopen = function () { // "live" once the page is current again (what was missed, re-fetched)
        onEvents([]).then(function () { setLive(true, "live"); },
                          function () { setLive(false, "update failed; retrying"); });
      };
      source.onerror = function () {
        setLive(false, "reconnecting");
        if (source.readyState === EventSource.CLOSED) { // the browser gave up: start again
          setTimeout(connect, 3000);
        }
      };
      types.forEach(function (type) { source.addEventListener(type, seen); });
      source.onmessage = seen;
    }
    connect();
  }

  function statusPage() {
    follow(function (events) {
      var work = [refreshStatus()];
      if (!events.length || events.some(function (e) { return e.type === "RELEASE_TAGGED"; })) {
        work.push(refreshReleases());
      }
      return Promise.all(work);
    });
    setInterval(tick, 1000);
    setInterval(function () { refreshLab().catch(function () { /* shown at the next look */ }); }, LAB_EVERY);
  }

  // -- a request's page: its timeline -----------------------------------------------------------

  var SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    for (var name in attrs) node.setAttribute(name, String(attrs[name]));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function drawTimeline(shown, now) {
    var rows = [];
    shown.builds.forEach(function (build) {
      rows.push({kind: "build", label: "build " + build.number, state: build.state, from: build.started_at,
                 to: build.finished_at});
      build.stages.forEach(function (stage) {
        rows.push({kind: "stage", label: stage.name, state: stage.state, from: stage.started_at, to: stage.finished_at});
        stage.tasks.forEach(function (task) {
          rows.push({kind: "task", label: task.configuration, state: task.state, from: task.started_at,
                     to: task.finished_at});
        });
      });
    });
    var starts = rows.map(function (r) { return r.from; }).filter(function (t) { return t; });
    var view = document.getElementById("timeline-view");
    if (!rows.length) { replaceChildren(view, el("p", null, "no build yet")); return; }
    var t0 = starts.length ? Math.min.apply(null, starts) : now;
    var ends = rows.map(function (r) { return r.to || (r.from ? now : t0); });
    var span = Math.max(1, Math.max.apply(null, ends) - t0);
    var labelWidth = 180, width = 900, rowHeight = 22, plot = width - labelWidth - 10;
    var height = rows.length * rowHeight + 30;
    var chart = svg("svg", {"class": "timeline", "viewBox": "0 0 " + width + " " + height, "width": "100%",
                            "role": "img", "aria-label": "timeline of request #" + shown.request.id});
    for (var i = 0; i <= 4; i++) { // the time axis
      var x = labelWidth + plot * i / 4;
      chart.appendChild(svg("line", {"x1": x, "x2": x, "y1": 0, "y2": height - 20, "class": "tick"}));
      chart.appendChild(svg("text", {"x": x, "y": height - 5, "class": "tick-label"}, seconds(span * i / 4)));
    }
    rows.forEach(function (row, index) {
      var y = index * rowHeight + 4;
      var indent = row.kind === "build" ? 0 : row.kind === "stage" ? 12 : 28;
      chart.appendChild(svg("text", {"x": 4 + indent, "y": y + 14, "class": "row-label " + row.kind}, row.label));
      if (!row.from) return;
      var left = labelWidth + plot * (row.from - t0) / span;
      var right = labelWidth + plot * ((row.to || now) - t0) / span;
      var bar = svg("rect", {"x": left, "y": y + (row.kind === "task" ? 4 : 2), "height": row.kind === "task" ? 10 : 14,
                             "width": Math.max(2, right - left), "class": "bar " + row.kind + " state-" + token(row.state),
                             "data-label": row.label});
      bar.appendChild(svg("title", {}, row.label + ": " + row.state + ", " + seconds((row.to || now) - row.from)));
      chart.appendChild(bar);
    });
    replaceChildren(view, chart);
  }

  function renderRequest(shown) {
    var r = shown.request;
    var state = document.getElementById("request-state");
    state.className = "badge state-" + token(r.state);
    state.textContent = r.state + (r.phase && r.state === "testing" ? " \u00b7 " + r.phase : "");
    document.getElementById("request-detail").textContent = r.detail || "";
    var rows = [];
    shown.builds.forEach(function (b) {
      b.stages.forEach(function (s) {
        s.tasks.forEach(function (t) {
          rows.push(el("tr", null, el("td", null, "build " + b.number), el("td", null, s.name),
                       el("td", null, t.configuration), el("td", null, t.state, t.outcome ? " " + t.outcome : ""),
                       el("td", null, seconds(t.duration))));
        });
      });
    });
    replaceChildren(document.getElementById("task-rows"), rows);
    drawTimeline(shown, Date.now() / 1000 + clockSkew);
  }

  function requestPage() {
    var id = body.getAttribute("data-request");
    var url = "/api/requests/" + encodeURIComponent(id);
    var latest = null;
    follow(function (events) {
      var mine = events.filter(function (e) { return String(e.request_id) === id; });
      if (events.length && !mine.length) return Promise.resolve();
      return getJSON(url).then(function (shown) { latest = shown; renderRequest(shown); });
    });
    setInterval(function () { // a running task's bar grows
      var running = latest && latest.builds.some(function (b) {
        return b.stages.some(function (s) { return s.tasks.some(function (t) { return t.state === "building"; }); });
      });
      if (running) drawTimeline(latest, Date.now() / 1000 + clockSkew);
    }, 1000);
  }

  if (body.getAttribute("data-page") === "status") statusPage();
  if (body.getAttribute("data-page") === "request") requestPage();
})();
