"""The lab's pure parts: parsing --rigs, the pool check, the server configuration."""

from __future__ import annotations

import pytest

from convoy.errors import ConvoyError
from convoy.lab import buildgrid, pools
from convoy.lab.lab import RigSpec, parse_rigs


def _bot(name: str, pool: str, healthy: bool = True, status: str = "OK") -> pools.Bot:
    return pools.Bot(name=name, pool=pool, status=status if healthy else "UNHEALTHY", healthy=healthy)


def test_parse_rigs_defaults_the_board_from_the_pool():
    assert parse_rigs("rover-rigs:2, drone-rigs:1,bench:1:drone") == [
        RigSpec(pool="rover-rigs", count=2, board="rover"),
        RigSpec(pool="drone-rigs", count=1, board="drone"),
        RigSpec(pool="bench", count=1, board="drone"),
    ]
    assert RigSpec(pool="rover-rigs", count=2, board="rover").names() == ["rover-rigs-1", "rover-rigs-2"]


def test_parse_rigs_reports_every_mistake_on_its_own_line():
    with pytest.raises(ConvoyError) as e:
        parse_rigs("rover-rigs,default:1,x:1,x:2,bad pool:1")
    assert e.value.problems == (
        "--rigs: 'rover-rigs' is not pool:count[:board], e.g. rover-rigs:2 or lab-a:1:drone",
        "--rigs: pool 'default' is the general workers' pool; name the rig pool otherwise",
        "--rigs: pool x is given twice",
        "--rigs: pool 'bad pool' may have letters, digits, '-', '_' and '.' only",
    )


def test_pools_from_tags_reads_the_pool_tags_only():
    tags = ["convoy-hardware", "convoy-pool=rover-rigs", "exclusive", "convoy-pool=drone-rigs", "convoy-pool="]
    assert pools.pools_from_tags(tags) == {"rover-rigs", "drone-rigs"}


def test_check_pools_passes_when_every_pool_has_a_healthy_worker():
    workers = [_bot("rover-1", "rover-rigs", healthy=False), _bot("rover-2", "rover-rigs"), _bot("drone-1", "drone-rigs")]
    pools.check_pools({"rover-rigs", "drone-rigs"}, workers=workers)
    pools.check_pools(set(), workers=[])


def test_check_pools_names_each_pool_without_a_healthy_worker():
    workers = [_bot("rover-1", "rover-rigs", healthy=False), _bot("general-1", "default")]
    with pytest.raises(pools.NoHealthyWorker) as e:
        pools.check_pools({"rover-rigs", "drone-rigs", "default"}, workers=workers)
    assert e.value.problems == ("no healthy worker in pool drone-rigs", "no healthy worker in pool rover-rigs")
    assert isinstance(e.value, ConvoyError)


def test_a_lab_that_cannot_be_asked_is_an_infrastructure_error(tmp_path):
    lab = pools.LabAddress(server="127.0.0.1:9", python=tmp_path / "no-python")
    with pytest.raises(pools.LabUnreachable, match="the lab's Python .* is missing. Run: bash scripts/setup"):
        pools.check_pools({"rover-rigs"}, lab)


def test_the_server_routes_by_pool_on_loopback_only(tmp_path):
    text = buildgrid.config(port=50051, instance="convoy", database="postgresql+psycopg2://bgd@127.0.0.1:5/bgd", cas=tmp_path)
    assert 'address: "127.0.0.1:50051"' in text
    assert "match-property-keys: [Pool, Rig]" in text
    assert "unique-property-keys: [Pool]" in text
    assert "connection-string: postgresql+psycopg2://" in text
