"""Trino's file-based access control (etc/access-control.properties naming a rules JSON file)
on a multi-process cluster: what a user may not read is refused with PERMISSION_DENIED and
Trino's "Access Denied" message, and left out of SHOW, information_schema and the Flight SQL
metadata calls (adbc_get_objects); denied columns cannot be read, even through a filter or
SELECT *; read-only catalogs refuse writes; session-property rules apply; a bad rules file
stops start-up naming the rule."""
import json
import subprocess
from pathlib import Path

import adbc_driver_manager
import pytest

from conftest import BIN, connect, etc_with as etc_copy, query, running

RULES = {
    "catalogs": [
        {"user": "admin", "catalog": ".*", "allow": "all"},
        {"catalog": "system", "allow": "none"},
        {"user": "reader", "catalog": "memory", "allow": "read-only"},
        {"catalog": "memory", "allow": "all"},
        {"catalog": "tpch", "allow": "read-only"},
    ],
    "schemas": [
        {"user": "admin", "owner": True},
        {"user": "analyst", "catalog": "memory", "schema": "default", "owner": True},
    ],
    "tables": [
        {"user": "admin", "privileges": ["OWNERSHIP"]},
        {"user": "analyst", "catalog": "tpch", "schema": "tiny", "table": "customer",
         "privileges": ["SELECT"], "columns": [{"name": "c_phone", "allow": False}]},
        {"user": "analyst", "catalog": "tpch", "schema": "tiny", "table": "nation|region|orders",
         "privileges": ["SELECT"]},
        {"user": "analyst", "catalog": "tpch", "schema": "tiny", "table": "lineitem",
         "privileges": []},
        {"user": "analyst", "catalog": "memory", "schema": "default", "privileges": ["OWNERSHIP"]},
        {"user": "reader", "catalog": "memory", "privileges": ["SELECT"]},
        {"user": "reader", "catalog": "tpch", "schema": "tiny", "privileges": ["SELECT"]},
    ],
    "system_session_properties": [
        {"user": "analyst", "property": "query_max_run_time", "allow": False},
        {"user": "analyst", "property": "datafusion\\.execution\\..*", "allow": False},
        {"allow": True},
    ],
}


def etc_with(rules: str, properties: str) -> Path:
    return etc_copy({"rules.json": rules, "access-control.properties": properties})


PROPERTIES = "access-control.name=file\nsecurity.config-file=etc/rules.json\n"


@pytest.fixture(scope="module")
def acl_cluster(request):
    yield from running(request, etc_with(json.dumps(RULES), PROPERTIES), user="admin")


def refused(conn, sql):
    """The error of a statement that must fail for lack of privileges."""
    with pytest.raises(adbc_driver_manager.Error) as err:
        query(conn, sql)
    assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHORIZED, str(err.value)
    return str(err.value)


def test_tables_a_user_may_not_read_are_refused(acl_cluster):
    conn = connect(acl_cluster.uri, "analyst")
    try:
        assert query(conn, "SELECT count(*) FROM tpch.tiny.nation") == [(25,)]
        assert "Access Denied: Cannot select from table tpch.tiny.lineitem" in refused(
            conn, "SELECT count(*) FROM tpch.tiny.lineitem")
        # No rule names part: denied like lineitem, also inside a subquery or a join.
        assert "Cannot select from table tpch.tiny.part" in refused(
            conn, "SELECT count(*) FROM tpch.tiny.nation WHERE n_nationkey IN "
                  "(SELECT p_partkey FROM tpch.tiny.part)")
        assert "Cannot select from table tpch.tiny.supplier" in refused(
            conn, "SELECT count(*) FROM tpch.tiny.nation JOIN tpch.tiny.supplier "
                  "ON n_nationkey = s_nationkey")
        assert "Access Denied: Cannot access catalog system" in refused(
            conn, "SELECT count(*) FROM system.runtime.queries")
        # EXPLAIN shows plans only of what the user may read.
        refused(conn, "EXPLAIN SELECT * FROM tpch.tiny.lineitem")
        # A join of permitted tables gives the same answer as for the admin.
        join = ("SELECT r_name, count(*) FROM tpch.tiny.nation JOIN tpch.tiny.region "
                "ON n_regionkey = r_regionkey GROUP BY r_name ORDER BY r_name")
        admin = connect(acl_cluster.uri, "admin")
        try:
            expected = query(admin, join)
            assert query(admin, "SELECT count(*) FROM tpch.tiny.lineitem") == [(60175,)]
        finally:
            admin.close()
        assert query(conn, join) == expected and len(expected) == 5
    finally:
        conn.close()


def test_denied_columns_cannot_be_read(acl_cluster):
    conn = connect(acl_cluster.uri, "analyst")
    try:
        assert query(conn, "SELECT c_name FROM tpch.tiny.customer ORDER BY c_custkey LIMIT 1") == [
            ("Customer#000000001",)]
        for sql in ["SELECT c_phone FROM tpch.tiny.customer",
                    "SELECT * FROM tpch.tiny.customer",
                    "SELECT count(*) FROM tpch.tiny.customer WHERE c_phone LIKE '25-%'",
                    "SELECT c_name FROM tpch.tiny.customer ORDER BY c_phone LIMIT 1",
                    "SELECT o_orderkey FROM tpch.tiny.orders JOIN tpch.tiny.customer "
                    "ON o_custkey = c_custkey WHERE c_phone = '25-989-741-2988'"]:
            message = refused(conn, sql)
            assert "Cannot select from columns [c_phone] in table or view tpch.tiny.customer" in message, sql
        columns = [r[0] for r in query(conn, "SHOW COLUMNS FROM tpch.tiny.customer")]
        assert "c_name" in columns and "c_phone" not in columns
    finally:
        conn.close()


def test_listings_show_only_what_the_user_may_see(acl_cluster):
    conn = connect(acl_cluster.uri, "analyst")
    admin = connect(acl_cluster.uri, "admin")
    try:
        catalogs = {r[0] for r in query(conn, "SHOW CATALOGS")}
        assert catalogs == {"memory", "tpch"}, catalogs
        assert "system" in {r[0] for r in query(admin, "SHOW CATALOGS")}
        tables = [r[0] for r in query(conn, "SHOW TABLES FROM tpch.tiny")]
        assert tables == ["customer", "nation", "orders", "region"], tables
        schemas = [r[0] for r in query(conn, "SHOW SCHEMAS FROM tpch")]
        assert schemas == ["tiny"], schemas
        assert {"tiny", "sf1"} <= {r[0] for r in query(admin, "SHOW SCHEMAS FROM tpch")}
        listed = query(conn, "SELECT table_name FROM tpch.information_schema.tables "
                             "WHERE table_schema = 'tiny' ORDER BY table_name")
        assert [r[0] for r in listed] == tables
        columns = query(conn, "SELECT column_name FROM tpch.information_schema.columns "
                              "WHERE table_schema = 'tiny' AND table_name = 'customer'")
        assert "c_name" in {r[0] for r in columns}
        assert len(query(admin, "SELECT table_name FROM tpch.information_schema.tables "
                                "WHERE table_schema = 'tiny'")) == 8
        # Flight SQL metadata (what JDBC's DatabaseMetaData and BI tools' browsers call).
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        seen = {o["catalog_name"]: o for o in objects}
        assert set(seen) == {"memory", "tpch"}, set(seen)
        tiny = next(s for s in seen["tpch"]["catalog_db_schemas"] if s["db_schema_name"] == "tiny")
        names = {t["table_name"]: t for t in tiny["db_schema_tables"]}
        assert set(names) == {"customer", "nation", "orders", "region"}, set(names)
        customer_columns = {c["column_name"] for c in names["customer"]["table_columns"]}
        assert "c_name" in customer_columns and "c_phone" not in customer_columns
        admin_objects = admin.adbc_get_objects(depth="catalogs").read_all().to_pylist()
        assert "system" in {o["catalog_name"] for o in admin_objects}
    finally:
        conn.close()
        admin.close()


def test_writes_need_their_privileges(acl_cluster):
    analyst = connect(acl_cluster.uri, "analyst")
    reader = connect(acl_cluster.uri, "reader")
    try:
        # analyst owns memory.default: creates, fills and drops tables there.
        query(analyst, "CREATE TABLE memory.default.acl_nations AS SELECT n_nationkey, n_name "
                       "FROM tpch.tiny.nation")
        query(analyst, "INSERT INTO memory.default.acl_nations VALUES (100, 'ATLANTIS')")
        assert query(analyst, "SELECT count(*) FROM memory.default.acl_nations") == [(26,)]
        # reader may read memory (read-only) but not write it.
        assert query(reader, "SELECT count(*) FROM memory.default.acl_nations") == [(26,)]
        assert "Cannot insert into table memory.default.acl_nations" in refused(
            reader, "INSERT INTO memory.default.acl_nations VALUES (101, 'MU')")
        assert "Cannot create table memory.default.reader_copy" in refused(
            reader, "CREATE TABLE memory.default.reader_copy AS SELECT 1 AS x")
        assert "Cannot drop table memory.default.acl_nations" in refused(
            reader, "DROP TABLE memory.default.acl_nations")
        # A CTAS reading a denied table is refused before anything is created.
        assert "Cannot select from table tpch.tiny.lineitem" in refused(
            analyst, "CREATE TABLE memory.default.acl_lines AS SELECT * FROM tpch.tiny.lineitem")
        assert "acl_lines" not in {r[0] for r in query(analyst, "SHOW TABLES FROM memory.default")}
        # Nothing already written was lost.
        assert query(analyst, "SELECT count(*) FROM memory.default.acl_nations") == [(26,)]
        query(analyst, "DROP TABLE memory.default.acl_nations")
    finally:
        analyst.close()
        reader.close()


def test_files_views_and_partitions_do_not_get_around_the_rules(acl_cluster):
    conn = connect(acl_cluster.uri, "analyst")
    try:
        # An external table would read any local file (etc/, keys).
        assert "CREATE EXTERNAL TABLE is not allowed" in refused(
            conn, "CREATE EXTERNAL TABLE memory.default.leak (line VARCHAR) STORED AS CSV "
                  "LOCATION '/etc/hostname'")
        # A view keeps the catalog and schema it was created in: readers' USE cannot change
        # what it reads.
        query(conn, "USE tpch.tiny")
        query(conn, "CREATE VIEW memory.default.v AS SELECT n_name FROM nation")
        query(conn, "USE tpch.sf1")
        assert len(query(conn, "SELECT * FROM memory.default.v")) == 25
        query(conn, "DROP VIEW memory.default.v")
        # A view over a denied table is refused to its readers.
        admin = connect(acl_cluster.uri, "admin")
        try:
            query(admin, "CREATE VIEW memory.default.lines AS SELECT l_orderkey FROM tpch.tiny.lineitem")
            assert "Cannot select from table tpch.tiny.lineitem" in refused(
                conn, "SELECT count(*) FROM memory.default.lines")
            query(admin, "DROP VIEW memory.default.lines")
        finally:
            admin.close()
    finally:
        conn.close()


def test_session_property_rules(acl_cluster):
    conn = connect(acl_cluster.uri, "analyst")
    try:
        query(conn, "SET SESSION join_distribution_type = 'BROADCAST'")
        assert "Cannot set system session property query_max_run_time" in refused(
            conn, "SET SESSION query_max_run_time = '1h'")
        # DataFusion's own SET is a session property too.
        assert "datafusion.execution.batch_size" in refused(
            conn, "SET datafusion.execution.batch_size = 100")
        assert "Cannot access catalog system" in refused(conn, "USE system.runtime")
    finally:
        conn.close()
    admin = connect(acl_cluster.uri, "admin")
    try:
        query(admin, "SET SESSION query_max_run_time = '1h'")
    finally:
        admin.close()


@pytest.mark.parametrize("rules, properties, expected", [
    (json.dumps({"tables": [{"privileges": ["READ"]}]}), PROPERTIES, "unknown variant `READ`"),
    (json.dumps({"catalogs": [{"catalog": "tpch", "allow": "sometimes"}]}), PROPERTIES,
     "catalogs[0]: \"allow\""),
    (json.dumps({"tables": [{"privileges": ["SELECT"], "filter": "x > 1"}]}), PROPERTIES,
     "tables[0]: row filters"),
    ("{not json", PROPERTIES, "not a valid access-control file"),
    (json.dumps({}), "access-control.name=ldap\nsecurity.config-file=etc/rules.json\n",
     "access-control.name=ldap is not supported"),
    (json.dumps({}), "access-control.name=file\nsecurity.config-fiel=etc/rules.json\n",
     "missing required property 'security.config-file'"),
    (json.dumps({}), PROPERTIES + "security.refresh-perod=1m\n", "security.refresh-period"),
])
def test_bad_rules_stop_start_up(rules, properties, expected):
    etc = etc_with(rules, properties)
    result = subprocess.run([BIN, "scheduler", "--etc", str(etc), "--flight-sql-addr", "127.0.0.1:0",
                             "--scheduler-addr", "127.0.0.1:0", "--http-addr", "off", "--history-url", "none"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
