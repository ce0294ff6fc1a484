"""`convoy serve`'s application: the JSON API and the forges' webhooks (commands/serve.py runs it).

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

Handlers call the functions the commands call (convoy.commands.submit,
show, cancel, retry, events; convoy.requests for the webhooks' queueing),
so the HTTP service and the CLI cannot disagree. docs/api.md is the
reference for users.
"""
