"""convoy.yaml's `store:` (the URL of the queue's store): checked like every
other key, and never with a password in it (convoy.yaml is committed)."""

from __future__ import annotations

import pytest

from convoy.config import parse_config
from convoy.errors import ConvoyError


@pytest.mark.parametrize("url", [
    "postgresql://convoy@db.example.com/convoy", "postgres://db.example.com:5433/convoy?sslmode=require",
    "sqlite:///srv/integration/state.db",
])
def test_a_store_url_is_kept(url):
    assert parse_config(f"store: {url}\n", "convoy.yaml").store == url


def test_without_it_the_checkout_keeps_its_own():
    assert parse_config("", "convoy.yaml").store is None


@pytest.mark.parametrize("text, wanted", [
    ("store: mysql://db/convoy\n", "convoy.yaml:1: store: 'mysql://db/convoy' is not a store URL; write it like "
                                   "store: postgresql://convoy@db.example.com/convoy"),
    ("store: sqlite:relative.db\n", "is not a store URL"),
    ("store: 5432\n", "convoy.yaml:1: store: must be a string, not a number"),
    ("store:\n", "convoy.yaml:1: store: has no value"),
    ("store: postgresql://convoy:hunter2@db/convoy\n", "convoy.yaml:1: store: the URL holds a password, and "
     "convoy.yaml is committed; remove it from the URL and put it in PGPASSFILE (~/.pgpass), or give the whole "
     "URL in CONVOY_STORE_URL"),
    ("store: postgresql://db/convoy?password=hunter2\n", "the URL holds a password"),
    ("store: mysql://convoy:hunter2@db/convoy\n", "is not a store URL"),
])
def test_a_wrong_store_is_one_line_that_never_repeats_a_password(text, wanted):
    with pytest.raises(ConvoyError) as error:
        parse_config(text, "convoy.yaml")
    message = str(error.value)
    assert wanted in message and "\n" not in message and "hunter2" not in message
