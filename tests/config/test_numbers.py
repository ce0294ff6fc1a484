"""Numbers in convoy.yaml that no timer can hold: nan, inf, and numbers too
long to be one, refused at their line (convoy.config, convoy.yamlcheck)."""

from __future__ import annotations

import pytest

from convoy.config import parse_config
from convoy.errors import ConvoyError


@pytest.mark.parametrize("text, problem", [
    ("queue: {poll_interval: .nan}\n", "convoy.yaml:1: queue.poll_interval: must be a finite number, not nan"),
    ("queue:\n  poll_interval: .inf\n", "convoy.yaml:2: queue.poll_interval: must be a finite number, not inf"),
    ("stages:\n  - {name: b, command: build, timeout: .nan}\n",
     "convoy.yaml:2: stages.b.timeout: must be a finite number, not nan"),
    ("stages:\n  - name: b\n    command: build\n    timeout: .INF\n",
     "convoy.yaml:4: stages.b.timeout: must be a finite number, not inf"),
    ("queue: {poll_interval: 1e400}\n", "convoy.yaml:1: queue.poll_interval: must be a finite number, not inf"),
    ("queue: {poll_interval: 1" + "0" * 400 + "}\n",
     "convoy.yaml:1: queue.poll_interval: must be at most 1e+09, not a number of 401 digits"),
    ("parallelism: 1" + "0" * 5000 + "\n", f"convoy.yaml:1: '1{'0' * 36}...' is not a valid YAML int"),
    ("git: {remote: 2024-13-45}\n", "convoy.yaml:1: '2024-13-45' is not a valid YAML timestamp"),
])
def test_nan_inf_and_numbers_no_timer_holds_are_refused_at_their_line(text, problem):
    with pytest.raises(ConvoyError) as raised:
        parse_config(text, "convoy.yaml")
    assert len(raised.value.problems) == 1 and raised.value.problems[0].startswith(problem), raised.value
