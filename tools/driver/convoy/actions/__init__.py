"""The plain functions behind the commands and the HTTP handlers.

`convoy <command>` (convoy.commands) parses its flags, calls these and
prints; `convoy serve` (convoy.serve) reads a request, calls the same
functions and answers in JSON or HTML. They take plain arguments (a
checkout's root, a request id, who and why), never flags, and raise
convoy.errors.ConvoyError (one line: what to do) for the caller's mistake.
One module per concept:

- checkout: finding the integration checkout, its config and store, reading
  a request id (`checkout`, `config`, `store`, `has_store`, `request_id`);
- status, show, events: what the queue holds (`status.status`, `status.row`,
  `show.show`, `events.events`);
- submit, groups: checking and queueing bumps (`submit.validate`,
  `submit.submit`; `groups.add_to_group`, `groups.close_group`);
- steer: pausing, draining and resuming the queue (`steer.pause`,
  `steer.drain`, `steer.resume`, `steer.hold`);
- change: what is done to one request (`change.cancel`, `change.retry`,
  `change.promote`);
- tries: try runs (`tries.submit`, `tries.show`).

Nothing here imports convoy.commands or convoy.serve.
"""
