"""No secret leaves the processes that need it: catalogs holding an S3 secret key and database
passwords (one through ${ENV:…}), a password file, a JWT signing key, the cluster's internal
shared secret (and the token derived from it), queries that work and queries that fail
because of a wrong secret; then every log line, system table, EXPLAIN, SHOW output, web UI
page, /v1 and /metrics answer and the query history store are searched for the secrets."""
import base64
import hashlib
import os
import time
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import jwt
import psycopg
import pytest

from conftest import Cluster, connect, query
from s3 import SECRET_KEY, S3Server

FLIGHT_PASSWORD = "flight-Pw-8Jm2"
PG_PASSWORD = "pg-Secret-Kx4q"
MYSQL_PASSWORD = "hunter2-Tq7w"
BAD_S3_SECRET = "wrong-s3-Zq9xPm"
SHARED_SECRET = "internal-Secret-Wq81vZ3n"
JWT_KEY = bytes(range(7, 39))
JWT_KEY_TEXT = base64.b64encode(JWT_KEY).decode()
SECRETS = [SECRET_KEY, FLIGHT_PASSWORD, PG_PASSWORD, MYSQL_PASSWORD, BAD_S3_SECRET, SHARED_SECRET,
           JWT_KEY_TEXT,
           hashlib.sha256(b"tributary internal communication\0" + SHARED_SECRET.encode()).hexdigest(),
           base64.b64encode(f"alice:{FLIGHT_PASSWORD}".encode()).decode().rstrip("=")]


@pytest.fixture(scope="module")
def secret_cluster(request):
    s3 = S3Server()
    s3.client.create_bucket(Bucket="meta")
    pg = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True)
    pg.execute("DROP TABLE IF EXISTS secret_probe")
    pg.execute("CREATE TABLE secret_probe (id int, name text)")
    pg.execute("INSERT INTO secret_probe VALUES (1, 'a'), (2, 'b')")
    pg.close()
    base = Path(tempfile.mkdtemp(prefix="tributary-secrets-"))
    etc = base / "etc"
    (etc / "catalog").mkdir(parents=True)
    catalogs = {
        "tpch": "connector.name=tpch\n",
        "hive": s3.catalog("meta"),
        "hive_bad": s3.catalog("meta", secret=BAD_S3_SECRET),
        "pg": ("connector.name=postgresql\nconnection-url=jdbc:postgresql://127.0.0.1:5432/test\n"
               "connection-user=postgres\nconnection-password=${ENV:PG_SECRET}\n"),
        "my_bad": ("connector.name=mysql\nconnection-url=jdbc:mysql://127.0.0.1:3306/test\n"
                   f"connection-user=nosuchuser\nconnection-password={MYSQL_PASSWORD}\n"
                   "connection-timeout=3s\n"),
    }
    for name, text in catalogs.items():
        (etc / "catalog" / f"{name}.properties").write_text(text)
    passwords = base / "password.db"
    passwords.write_text(f"alice:{FLIGHT_PASSWORD}\n")
    (base / "jwt.key").write_text(JWT_KEY_TEXT + "\n")
    (etc / "config.properties").write_text(
        "http-server.authentication.type=PASSWORD,JWT\n"
        f"http-server.authentication.jwt.key-file={base / 'jwt.key'}\n"
        f"internal-communication.shared-secret={SHARED_SECRET}\n")
    c = Cluster(etc, password_file=passwords, executors=2,
                env={"PG_SECRET": PG_PASSWORD, "TRIBUTARY_LOG": "info,tributary=debug"})
    try:
        c.wait_ready("alice", FLIGHT_PASSWORD)
        yield c
    finally:
        if request.session.testsfailed:
            print(c.logs(60))
        c.stop()
        s3.stop()


def http(cluster, path):
    request = urllib.request.Request(cluster.http + path, headers={
        "Authorization": "Basic " + base64.b64encode(f"alice:{FLIGHT_PASSWORD}".encode()).decode()})
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.status == 200, path
        return r.read().decode(errors="replace")


def test_no_secret_in_logs_errors_system_tables_ui_or_history(secret_cluster):
    c = secret_cluster
    conn = connect(c.uri, "alice", FLIGHT_PASSWORD)
    seen = []  # every answer and error text the clients got

    def run(sql, fails=False):
        try:
            rows = query(conn, sql)
            seen.append(repr(rows))
            assert not fails, f"{sql} should have failed"
            return rows
        except adbc_driver_manager.Error as e:  # errors are searched too
            seen.append(str(e))
            assert fails, f"{sql} failed: {e}"
            return None

    try:
        assert run("SELECT count(*) FROM pg.public.secret_probe") == [(2,)]
        run("CREATE SCHEMA hive.probe")
        run("CREATE TABLE hive.probe.t AS SELECT * FROM tpch.tiny.nation")
        assert run("SELECT count(*) FROM hive.probe.t") == [(25,)]
        # Failures caused by wrong secrets.
        run("SELECT count(*) FROM hive_bad.probe.t", fails=True)
        run("SHOW SCHEMAS FROM my_bad", fails=True)
        for sql in ["SHOW CATALOGS", "SHOW SESSION", "SHOW CREATE TABLE hive.probe.t",
                    "EXPLAIN SELECT * FROM pg.public.secret_probe WHERE id = 1",
                    "EXPLAIN ANALYZE SELECT count(*) FROM pg.public.secret_probe",
                    "SELECT * FROM system.metadata.catalogs",
                    "SELECT * FROM system.metadata.table_properties",
                    "SELECT * FROM system.metadata.session_properties",
                    "SELECT * FROM system.runtime.nodes",
                    "SELECT * FROM system.runtime.tasks",
                    "SELECT * FROM system.runtime.queries",
                    "SELECT * FROM information_schema.df_settings"]:
            run(sql)
        # A JWT signed with the key works; one signed with another key fails.
        for key, fails in ((JWT_KEY, False), (b"x" * 32, True)):
            token = jwt.encode({"sub": "jwt_user", "exp": int(time.time()) + 600}, key,
                               algorithm="HS256")
            try:
                other = flightsql.connect(c.uri, db_kwargs={
                    "adbc.flight.sql.authorization_header": f"Bearer {token}"}, autocommit=True)
                try:
                    seen.append(repr(query(other, "SELECT count(*) FROM tpch.tiny.region")))
                    assert not fails
                finally:
                    other.close()
            except adbc_driver_manager.Error as e:
                seen.append(str(e))
                assert fails, str(e)
        query_ids = [r[0] for r in query(conn, "SELECT query_id FROM system.runtime.queries")]
    finally:
        conn.close()
    pages = [http(c, p) for p in ["/v1/query", "/v1/info", "/v1/node", "/ui/", "/ui/executors",
                                  "/metrics"]]
    pages += [http(c, f"/v1/query/{q}") for q in query_ids]
    pages += [http(c, f"/ui/query/{q}") for q in query_ids]
    pages += [urllib.request.urlopen(u + "/metrics", timeout=30).read().decode() for u in c.executor_http]
    logs = [(c.dir / f"{name}.log").read_text(errors="replace") for name, _ in c.procs]
    # SQLite keeps recent writes in its write-ahead log until a checkpoint.
    history = "".join(Path(p).read_bytes().decode("latin-1")
                      for p in [c.history, c.history + "-wal"] if os.path.exists(p))
    assert len(query_ids) > 15 and len(logs) == 3 and history
    # The wrong-secret failures were reported (so there was an error to leak into).
    assert any("hive_bad" in s for s in seen) and any("my_bad" in s for s in seen)
    haystacks = {"client answers and errors": "\n".join(seen), "http": "\n".join(pages),
                 "logs": "\n".join(logs), "history store": history}
    leaks = [(secret, where) for secret in SECRETS for where, text in haystacks.items() if secret in text]
    assert not leaks, f"secrets found: {leaks}"
    # The search does see what surrounds the secrets: the user of the refused login, the
    # queries kept in the history.
    assert "nosuchuser" in haystacks["client answers and errors"]
    assert "secret_probe" in haystacks["history store"]
