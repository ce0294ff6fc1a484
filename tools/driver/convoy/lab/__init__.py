"""The hardware lab: BuildGrid as the remote execution service, rig workers per pool.

Modules that run in the driver's environment (standard library only):
`lab` (start/stop of a local lab), `rigs` (its rigs and workers),
`status` (what `convoy lab status` shows), `postgres`, `buildgrid` (server
configuration), `procs` (detached processes), `pools` (pool health checks
and cancellation), `stage` (the hardware stage's side of them: the pools a
stage needs, by `bazel query`, and the invocation id/cancel around a task),
`health` (a hardware test run again on another rig, the rigs' failure, and
what a task teaches about each rig's health), `rig_health` (health.json:
good, suspect, bad, maintenance; standard library only, the workers read it). Modules that run in the lab's
environment (.venv-lab: grpcio, BuildGrid's protos): `worker` (the bot's session),
`worker_run` (one lease's action), `worker_state` (its records and state file),
`cas` (CAS client), `service` (questions to the server). `guard` runs each
action's command with the action's own Python-free environment.
"""
