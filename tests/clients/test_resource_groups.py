"""Admission control with Trino's resource-group files on a multi-process cluster: a user
limited to 2 concurrent queries sees the third wait QUEUED (in system.runtime.queries, in its
group) and then run; past the group's maxQueued a query is rejected at once with Trino's
message; a query no selector matches is rejected; a bad file stops start-up naming it."""
import json
import subprocess
import time
from pathlib import Path

import adbc_driver_manager
import pytest

from conftest import BIN, Background, connect, etc_with as etc_copy, query, running

LONG_QUERY = ("SELECT l_returnflag, count(*), sum(l_extendedprice) FROM tpch.sf1.lineitem "
              "JOIN tpch.sf1.orders ON l_orderkey = o_orderkey GROUP BY l_returnflag "
              "ORDER BY l_returnflag")

GROUPS = {
    "rootGroups": [{
        "name": "global", "softMemoryLimit": "80%", "hardConcurrencyLimit": 20, "maxQueued": 100,
        "schedulingPolicy": "weighted",
        "subGroups": [
            {"name": "limited", "softMemoryLimit": "10%", "hardConcurrencyLimit": 10, "maxQueued": 10,
             "schedulingWeight": 1,
             "subGroups": [{"name": "${USER}", "softMemoryLimit": "10%", "hardConcurrencyLimit": 2,
                            "maxQueued": 1}]},
            {"name": "adhoc", "softMemoryLimit": "50%", "hardConcurrencyLimit": 10, "maxQueued": 10,
             "schedulingWeight": 10},
        ],
    }],
    "selectors": [
        {"user": "limited_.*", "group": "global.limited.${USER}"},
        {"user": "admin|tester", "group": "global.adhoc"},
    ],
}


def etc_with(groups_json: str, properties: str) -> Path:
    return etc_copy({"resource-groups.json": groups_json,
                     "resource-groups.properties": properties})


PROPERTIES = ("resource-groups.configuration-manager=file\n"
              "resource-groups.config-file=etc/resource-groups.json\n")


@pytest.fixture(scope="module")
def rg_cluster(request):
    yield from running(request, etc_with(json.dumps(GROUPS), PROPERTIES))


def states(conn, user):
    return query(conn, "SELECT state, resource_group_id FROM system.runtime.queries "
                       f"WHERE \"user\" = '{user}' AND query LIKE '%sf1.lineitem%' "
                       "AND query NOT LIKE '%system.runtime%' AND state NOT IN ('FINISHED', 'FAILED')")


def test_third_query_waits_queued_then_runs_and_the_fourth_is_rejected(rg_cluster):
    watcher = connect(rg_cluster.uri, "admin")
    runs = []
    try:
        runs += [Background(rg_cluster.uri, LONG_QUERY, "limited_ann") for _ in range(2)]
        deadline = time.time() + 60
        while len(states(watcher, "limited_ann")) < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert len(states(watcher, "limited_ann")) == 2, states(watcher, "limited_ann")
        runs.append(Background(rg_cluster.uri, LONG_QUERY, "limited_ann"))
        deadline = time.time() + 60
        seen = []
        while time.time() < deadline:
            seen = states(watcher, "limited_ann")
            if ("QUEUED", "global.limited.limited_ann") in seen:
                break
            time.sleep(0.1)
        assert ("QUEUED", "global.limited.limited_ann") in seen, seen
        assert sum(1 for s, _ in seen if s != "QUEUED") == 2, seen

        # The group's queue (maxQueued 1) is full: the next query is rejected at once.
        other = connect(rg_cluster.uri, "limited_ann")
        try:
            started = time.time()
            with pytest.raises(adbc_driver_manager.Error) as rejected:
                query(other, "SELECT 1")
            assert time.time() - started < 10
            assert 'Too many queued queries for "global.limited.limited_ann"' in str(rejected.value)
        finally:
            other.close()
        # Other users are not held up by that group.
        assert query(watcher, "SELECT count(*) FROM tpch.tiny.nation") == [(25,)]
        assert query(watcher, "SELECT resource_group_id FROM system.runtime.queries "
                              "WHERE query = 'SELECT count(*) FROM tpch.tiny.nation'") == [("global.adhoc",)]
        failed = query(watcher, "SELECT error_code FROM system.runtime.queries "
                                "WHERE \"user\" = 'limited_ann' AND query = 'SELECT 1'")
        assert failed == [("QUERY_QUEUE_FULL",)]
    finally:
        watcher.close()
    for run in runs:
        run.join()
    assert len(runs) == 3
    assert [run.error for run in runs] == [None] * 3, [run.error for run in runs]
    assert [run.rows for run in runs] == [runs[0].rows] * 3
    # The queued one waited and then ran: its queued time is recorded.
    conn = connect(rg_cluster.uri, "admin")
    try:
        queued = query(conn, "SELECT max(queued_time_ms) FROM system.runtime.queries "
                             "WHERE \"user\" = 'limited_ann' AND state = 'FINISHED'")
        assert queued[0][0] > 500, queued
    finally:
        conn.close()


def test_queued_query_past_its_run_time_leaves_the_queue(rg_cluster):
    """query_max_run_time counts time QUEUED (Trino): a query that waits longer fails
    EXCEEDED_TIME_LIMIT, and its place in the queue is free again."""
    watcher = connect(rg_cluster.uri, "admin")
    try:
        long = [Background(rg_cluster.uri, LONG_QUERY, "limited_cat") for _ in range(2)]
        deadline = time.time() + 60
        while len(states(watcher, "limited_cat")) < 2 and time.time() < deadline:
            time.sleep(0.1)
        assert len(states(watcher, "limited_cat")) == 2
        started = time.time()
        limited = Background(rg_cluster.uri, "SELECT count(*) FROM tpch.sf1.lineitem", "limited_cat",
                             session=["SET SESSION query_max_run_time = '2s'"]).join()
        waited = time.time() - started
        assert isinstance(limited.error, adbc_driver_manager.Error), limited.rows
        assert "maximum run time of 2s" in str(limited.error)
        assert waited < 30
        # Its place (maxQueued 1) is free: another query can wait, and runs.
        queued = Background(rg_cluster.uri, "SELECT count(*) FROM tpch.tiny.nation", "limited_cat")
        for run in long + [queued]:
            run.join()
        assert queued.rows == [(25,)], queued.error
        code = query(watcher, "SELECT error_code, state FROM system.runtime.queries "
                              "WHERE \"user\" = 'limited_cat' "
                              "AND query = 'SELECT count(*) FROM tpch.sf1.lineitem'")
        assert code == [("EXCEEDED_TIME_LIMIT", "FAILED")], code
    finally:
        watcher.close()


def test_query_no_selector_matches_is_rejected(rg_cluster):
    conn = connect(rg_cluster.uri, "nobody")
    try:
        with pytest.raises(adbc_driver_manager.Error) as rejected:
            query(conn, "SELECT 1")
        assert "did not match any selection rule" in str(rejected.value)
    finally:
        conn.close()


@pytest.mark.parametrize("groups_json,properties,expected", [
    (json.dumps({"rootGroups": [{"name": "g", "maxQueued": 1}], "selectors": [{"group": "g"}]}),
     PROPERTIES, "group 'g': hardConcurrencyLimit is required"),
    (json.dumps({"rootGroups": [{"name": "g", "maxQueued": 1, "hardConcurrencyLimit": 1}],
                 "selectors": [{"group": "global.adhoc"}]}),
     PROPERTIES, "selector 1: group 'global.adhoc' is not a leaf group"),
    ("{not json", PROPERTIES, "resource-groups.json"),
    (json.dumps(GROUPS), "resource-groups.configuration-manager=file\n",
     "resource-groups.config-file"),
    (json.dumps(GROUPS), PROPERTIES + "resource-groups.max-refresh-interval=1s\n",
     "resource-groups.max-refresh-interval"),
])
def test_bad_resource_group_files_stop_startup(groups_json, properties, expected):
    etc = etc_with(groups_json, properties)
    out = subprocess.run([BIN, "scheduler", "--etc", str(etc), "--flight-sql-addr", "127.0.0.1:0",
                          "--scheduler-addr", "127.0.0.1:0", "--http-addr", "off",
                          "--history-url", "none"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert expected in out.stderr, out.stderr


@pytest.mark.parametrize("prop,what", [("query_max_execution_time", "execution time"),
                                       ("query_max_run_time", "run time")])
def test_time_limits_end_long_queries(rg_cluster, prop, what):
    conn = connect(rg_cluster.uri)
    try:
        query(conn, f"SET SESSION {prop} = '1s'")
        started = time.time()
        with pytest.raises(adbc_driver_manager.Error) as ended:
            query(conn, LONG_QUERY)
        assert time.time() - started < 30
        assert f"exceeded the maximum {what} of 1s (session property {prop})" in str(ended.value)
        code = query(conn, "SELECT error_code FROM system.runtime.queries "
                           "WHERE query LIKE '%sf1.lineitem%' AND \"user\" = 'tester' "
                           "AND error_code IS NOT NULL ORDER BY created DESC LIMIT 1")
        assert code == [("EXCEEDED_TIME_LIMIT",)]
    finally:
        conn.close()
