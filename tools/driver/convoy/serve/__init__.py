"""`convoy serve`'s application: the JSON API, the forges' webhooks and the status page (commands/serve.py runs it).

| module | what it holds |
| --- | --- |
| app.py | the Starlette app: routes, errors as `{"error": ...}`, the access log, crash logs |
| web.py | what handlers share: ApiError, JSON out, bodies in (size cap, JSON only), token checks |
| auth.py | tokens and the forges' secrets, loaded from the environment and the tokens file; constant-time checks |
| api.py | /api/requests (submit, show, cancel, retry), /api/events, /api/status, /api/releases |
| status.py | the status and releases JSON, from one read-only snapshot, with estimates from past durations |
| stream.py | /api/events/stream: Server-Sent Events polled from the events table |
| webhooks.py | /webhooks/github and /webhooks/gitlab: verified, mapped to a component, submitted once per delivery |
| repos.py | a forge's repository URLs compared with the manifest's remotes |
| logs.py | /api/requests/{id}/logs/{task_id}: the tail of a task's log, only from .convoy/logs |
| lab_view.py | /api/lab: the lab's rig pools, busy or idle, and their health ("none" without a lab), asked in the background: never waited for |
| page.py | / and /requests/{id}: the status page and a request's timeline, with a Content-Security-Policy |
| page_html.py | those pages' HTML from the API's JSON (static/page.js renders the same from the same JSON) |
| html.py | `el`: HTML elements with every text and attribute escaped, the pages' only way to write markup |
| static/ | page.js (live updates over the event stream, the timeline) and page.css |

Handlers call the functions the commands call (convoy.actions.submit,
show, cancel, retry, events; convoy.requests for the webhooks' queueing),
so the HTTP service and the CLI cannot disagree. docs/api.md is the
reference for users.
"""
