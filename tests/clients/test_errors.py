"""Every bad input gets a clear error with the right status code."""
import subprocess
import tempfile
from pathlib import Path

import adbc_driver_manager
import pytest

from conftest import BIN, Cluster, connect, query


def status_of(conn, sql):
    with pytest.raises(adbc_driver_manager.Error) as err:
        query(conn, sql)
    return err.value.status_code, str(err.value)


def test_bad_sql_is_invalid_argument_with_position(conn):
    code, message = status_of(conn, "SELEC 1")
    assert code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
    assert "line 1, column 1" in message


@pytest.mark.parametrize("sql, missing", [
    ("SELECT * FROM nope.tiny.nation", "catalog 'nope' does not exist"),
    ("SELECT * FROM tpch.nope.nation", "schema 'tpch.nope' does not exist"),
    ("SELECT * FROM tpch.tiny.nope", "table 'tpch.tiny.nope' does not exist"),
    ("SELECT nope FROM tpch.tiny.nation", "nope"),
])
def test_unknown_objects_are_not_found(conn, sql, missing):
    code, message = status_of(conn, sql)
    assert code == adbc_driver_manager.AdbcStatusCode.NOT_FOUND, message
    assert missing in message


def test_bad_session_property(conn):
    code, message = status_of(conn, "SET SESSION join_distribution_type = 'SIDEWAYS'")
    assert code == adbc_driver_manager.AdbcStatusCode.INVALID_ARGUMENT
    assert "AUTOMATIC, BROADCAST or PARTITIONED" in message


@pytest.mark.parametrize("content, expected", [
    ("connector.name=tpch\ntpch.colum-naming=STANDARD\n", "unknown property 'tpch.colum-naming'"),
    ("tpch.column-naming=STANDARD\n", "missing required property 'connector.name'"),
    ("connector.name=nosuch\n", "unknown connector 'nosuch'"),
    ("connector.name=tpch\ntpch.column-naming=WEIRD\n", "invalid value 'WEIRD' for property 'tpch.column-naming'"),
    # The seed's hive.properties: a Thrift metastore, which is not supported yet.
    ("connector.name=hive\nhive.metastore.uri=thrift://metastore-host:9083\nhive.s3.aws-access-key=YOUR_AWS_KEY\n"
     "hive.s3.aws-secret-key=YOUR_AWS_SECRET\nhive.s3.region=us-east-1\n", "Thrift Hive Metastore is not supported yet"),
    ("connector.name=hive\nhive.metastore.catalog.dir=s3://bucket/m/\nhive.max-split-size=lots\n",
     "invalid value 'lots' for property 'hive.max-split-size'"),
    ("connector.name=hive\nhive.metastore.catalog.dir=gs://bucket/m/\n", "unsupported scheme 'gs'"),
])
def test_bad_catalog_files_stop_startup(content, expected):
    etc = Path(tempfile.mkdtemp(prefix="tributary-etc-"))
    (etc / "catalog").mkdir()
    (etc / "catalog" / "x.properties").write_text(content)
    for role in (["scheduler", "--scheduler-addr", "127.0.0.1:0", "--flight-sql-addr", "127.0.0.1:0"],
                 ["executor", "--scheduler", "127.0.0.1:1"]):
        done = subprocess.run([BIN, *role, "--etc", str(etc)], capture_output=True, text=True, timeout=30)
        assert done.returncode != 0
        assert "x.properties" in done.stderr and expected in done.stderr, done.stderr


def test_password_file():
    etc = Path(tempfile.mkdtemp(prefix="tributary-etc-"))
    (etc / "catalog").mkdir()
    (etc / "catalog" / "tpch.properties").write_text("connector.name=tpch\n")
    passwords = etc / "passwords"
    passwords.write_text("alice:wonderland\n")
    cluster = Cluster(etc, password_file=passwords, executors=1)
    try:
        cluster.wait_ready("alice", "wonderland")
        with pytest.raises(adbc_driver_manager.Error) as err:
            intruder = connect(cluster.uri, "alice", "guess")
            try:
                query(intruder, "SELECT 1")
            finally:
                intruder.close()
        assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED
        good = connect(cluster.uri, "alice", "wonderland")
        assert query(good, "SELECT count(*) FROM tpch.tiny.region") == [(5,)]
        good.close()
        # The web UI and /v1 take the same credentials; /metrics and probes stay open.
        import base64
        import urllib.error
        import urllib.request
        for path in ["/ui/", "/v1/query"]:
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(cluster.http + path, timeout=10)
            assert denied.value.code == 401 and "Basic" in denied.value.headers["WWW-Authenticate"]
            wrong = urllib.request.Request(cluster.http + path, headers={
                "Authorization": "Basic " + base64.b64encode(b"alice:guess").decode()})
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(wrong, timeout=10)
            assert denied.value.code == 401
            right = urllib.request.Request(cluster.http + path, headers={
                "Authorization": "Basic " + base64.b64encode(b"alice:wonderland").decode()})
            assert urllib.request.urlopen(right, timeout=10).status == 200
        for path in ["/metrics", "/healthz", "/readyz"]:
            assert urllib.request.urlopen(cluster.http + path, timeout=10).status == 200
    finally:
        cluster.stop()


def test_trino_password_authenticator_with_hashed_passwords():
    """Trino's file authenticator: etc/password-authenticator.properties naming a password
    file of bcrypt (`htpasswd -B`) and PBKDF2 hashes, made here by independent libraries."""
    import base64
    import hashlib
    import urllib.request

    import bcrypt

    etc = Path(tempfile.mkdtemp(prefix="tributary-etc-")) / "etc"
    (etc / "catalog").mkdir(parents=True)
    (etc / "catalog" / "tpch.properties").write_text("connector.name=tpch\n")
    hashed = bcrypt.hashpw(b"wonderland", bcrypt.gensalt(rounds=8)).decode()
    salt = b"tributary-salt"
    digest = hashlib.pbkdf2_hmac("sha256", b"builder", salt, 1000)
    (etc / "password.db").write_text(
        f"alice:{hashed.replace('$2b$', '$2y$', 1)}\n"
        f"bob:1000:{salt.hex()}:{digest.hex()}\n")
    (etc / "password-authenticator.properties").write_text(
        "password-authenticator.name=file\nfile.password-file=etc/password.db\n")
    cluster = Cluster(etc, executors=1)
    try:
        cluster.wait_ready("alice", "wonderland")
        for user, password in [("alice", "wonderland"), ("bob", "builder")]:
            good = connect(cluster.uri, user, password)
            assert query(good, "SELECT count(*) FROM tpch.tiny.region") == [(5,)]
            good.close()
        for user, password in [("alice", "wonder"), ("bob", "Builder"), ("carol", "wonderland")]:
            with pytest.raises(adbc_driver_manager.Error) as err:
                intruder = connect(cluster.uri, user, password)
                try:
                    query(intruder, "SELECT 1")
                finally:
                    intruder.close()
            assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED
        right = urllib.request.Request(cluster.http + "/v1/query", headers={
            "Authorization": "Basic " + base64.b64encode(b"bob:builder").decode()})
        assert urllib.request.urlopen(right, timeout=10).status == 200
        # No hash or password in what the scheduler printed.
        log = (cluster.dir / "scheduler.log").read_text(errors="replace")
        assert hashed[7:] not in log and digest.hex() not in log and "wonderland" not in log
    finally:
        cluster.stop()


@pytest.mark.parametrize("properties,expected", [
    ("password-authenticator.name=ldap\n", "password-authenticator.name=ldap is not supported"),
    ("password-authenticator.name=file\n", "file.password-file"),
    ("password-authenticator.name=file\nfile.password-file=etc/none.db\n", "cannot read password file"),
    ("password-authenticator.name=file\nfile.password-file=etc/password.db\nfile.pasword-file=x\n",
     "file.pasword-file"),
])
def test_bad_password_authenticator_stops_startup(properties, expected):
    etc = Path(tempfile.mkdtemp(prefix="tributary-etc-")) / "etc"
    (etc / "catalog").mkdir(parents=True)
    (etc / "catalog" / "tpch.properties").write_text("connector.name=tpch\n")
    (etc / "password.db").write_text("alice:wonderland\n")
    (etc / "password-authenticator.properties").write_text(properties)
    done = subprocess.run([BIN, "scheduler", "--etc", str(etc), "--flight-sql-addr", "127.0.0.1:0",
                           "--scheduler-addr", "127.0.0.1:0", "--http-addr", "off", "--history-url", "none"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert expected in done.stderr, done.stderr
