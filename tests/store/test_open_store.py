"""Opening a store by URL (`open_store`) and an integration checkout's own
store (`checkout_store`), on real SQLite files in tmp_path.

A `sqlite:///<absolute path>` URL opens an SQLiteStore whose transactions
round-trip; any other scheme, and an SQLite URL that is relative or
malformed, is a one-line ConvoyError that says what to write instead, and
creates nothing. A checkout without state is refused for commands that only
look, as before the store took URLs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from convoy import models
from convoy.errors import ConvoyError
from convoy.models import RequestState
from convoy.store import SQLiteStore, checkout_store, checkout_url, open_store


def one_line(error: pytest.ExceptionInfo, *words: str) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message, message
    for word in words:
        assert word in message, message
    return message


def test_a_sqlite_url_opens_a_store_whose_transactions_round_trip(tmp_path):
    db = tmp_path / "state" / "state.db"
    url = f"sqlite://{db}"
    with open_store(url) as store:
        assert isinstance(store, SQLiteStore) and store.path == db
        with store.transaction() as tx:
            request = tx.insert_request(component="widget", version="v1.1.0", commit="a" * 40, requested_by="ci")
            tx.add_event(models.REQUEST_QUEUED, request_id=request.id, data={"component": "widget"})
    with open_store(url, readonly=True) as store, store.read() as tx:
        [read] = tx.requests()
        assert (read.id, read.component, read.version, read.commit, read.requested_by, read.state) == (
            request.id, "widget", "v1.1.0", "a" * 40, "ci", RequestState.QUEUED)
        assert [e.type for e in tx.events(request_id=request.id)] == [models.REQUEST_QUEUED]


def test_a_percent_encoded_sqlite_url_names_the_decoded_path(tmp_path):
    db = tmp_path / "a b%#?" / "state.db"
    with open_store(f"sqlite://{tmp_path}/a%20b%25%23%3F/state.db") as store:
        assert store.path == db
    assert db.is_file()


@pytest.mark.parametrize("url", (
    "mysql://convoy:secret@db.example/convoy", "mysql:///srv/state.db", "/srv/state.db", "state.db", "",
))
def test_an_unknown_scheme_is_one_line_naming_the_known_ones(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConvoyError) as error:
        open_store(url)
    message = one_line(error, "known: postgres, postgresql, sqlite", "use sqlite:///<absolute path of the database file>",
                       "or postgresql://<user>@<host>/<database>")
    assert "secret" not in message  # a password in a URL is not repeated
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", (
    "sqlite://state.db", "sqlite:state.db", "sqlite:", "sqlite://", "sqlite:///", "sqlite:///srv/convoy/",
    "sqlite://db.example/srv/state.db", "sqlite:///{tmp}/state.db?mode=ro", "sqlite:///{tmp}/state.db#x",
    "sqlite:///{tmp}/state%00.db",
))
def test_a_relative_or_malformed_sqlite_url_is_one_line_asking_for_an_absolute_path(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConvoyError) as error:
        open_store(url.replace("/{tmp}", str(tmp_path)))
    one_line(error, "absolute path", "use sqlite:///<absolute path of the database file>")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options", ({"readonly": True}, {"create": False}))
def test_a_url_to_no_database_is_refused_unless_asked_to_create_it(tmp_path, options):
    db = tmp_path / "state" / "state.db"
    with pytest.raises(ConvoyError) as error:
        open_store(f"sqlite://{db}", **options)
    one_line(error, "no convoy state", "run: convoy submit")
    assert list(tmp_path.iterdir()) == []


def test_a_checkouts_url_is_its_state_database(tmp_path):
    assert checkout_url(Path("/srv/integration")) == "sqlite:///srv/integration/.convoy/state.db"
    assert checkout_url(tmp_path / "a b") == f"sqlite://{tmp_path}/a%20b/.convoy/state.db"


@pytest.mark.parametrize("options", ({"readonly": True}, {"create": False}, {"create": True, "readonly": True}))
def test_a_checkout_without_state_is_refused_for_commands_that_only_look(tmp_path, options):
    with pytest.raises(ConvoyError) as error:
        checkout_store(tmp_path, **options)
    assert str(error.value) == (
        f"no convoy state in {tmp_path} (.convoy/state.db does not exist): nothing was submitted here yet; "
        "run: convoy submit --component=<name> --version=<version>"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options", ({"readonly": True}, {"create": False}))
def test_a_checkout_store_is_made_for_this_user_alone_and_read_back(tmp_path, options):
    checkout = tmp_path / "odd %20 #name?"
    checkout.mkdir()
    with checkout_store(checkout) as store, store.transaction() as tx:
        tx.insert_request(component="widget", version="v1.1.0", requested_by="ci")
    assert stat.S_IMODE(os.stat(checkout / ".convoy").st_mode) == 0o700
    assert (checkout / ".convoy" / "state.db").is_file()
    with checkout_store(checkout, **options) as store, store.read() as tx:
        assert [(r.component, r.version) for r in tx.requests()] == [("widget", "v1.1.0")]


def test_a_checkout_whose_state_directory_is_a_file_is_one_line(tmp_path):
    (tmp_path / ".convoy").write_text("not a directory\n")
    with pytest.raises(ConvoyError) as error:
        checkout_store(tmp_path)
    one_line(error, "is not a directory", "move it aside")
