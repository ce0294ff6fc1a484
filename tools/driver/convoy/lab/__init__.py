"""The hardware lab: BuildGrid as the remote execution service, rig workers per pool.

Modules that run in the driver's environment (standard library only):
`lab` (start/stop/status of a local lab), `postgres`, `buildgrid` (server
configuration), `procs` (detached processes), `pools` (pool health checks
and cancellation, for the hardware stage). Modules that run in the lab's
environment (.venv-lab: grpcio, BuildGrid's protos): `worker` (the bot),
`cas` (CAS client), `service` (questions to the server). `guard` runs each
action's command with the action's own Python-free environment.
"""
