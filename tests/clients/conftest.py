"""A real multi-process Tributary cluster for the client suite: one scheduler process and two
executor processes started from the built binary, on free loopback ports."""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pymysql
import pytest
from ports import free_port

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TRIBUTARY_BIN") or str(
    Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/tributary/target")) / "debug" / "tributary"
)


MYSQL = dict(host="127.0.0.1", port=3306, user="root", password="")


def mysql_run(*statements, database=None):
    """Runs statements on the machine's MariaDB (a tuple: `executemany`); the last one's rows."""
    conn = pymysql.connect(**MYSQL, database=database, autocommit=True)
    try:
        with conn.cursor() as cur:
            for s in statements:
                if isinstance(s, tuple):
                    cur.executemany(s[0], s[1])
                else:
                    cur.execute(s)
            return cur.fetchall()
    finally:
        conn.close()


def connect(uri: str, user: str = "tester", password: str = "secret"):
    """An ADBC DBAPI connection; the handshake gives it its own session."""
    return flightsql.connect(uri, db_kwargs={"username": user, "password": password}, autocommit=True)


def query(conn, sql, parameters=None):
    with conn.cursor() as cur:
        cur.execute(sql, parameters=parameters)
        return cur.fetchall()


def newest_finished(conn, where, columns):
    """`columns` of the newest statement in system.runtime.queries matching `where`, once it
    is recorded FINISHED (a client has its rows a moment before, so the newest finished row
    may be an earlier statement's)."""
    for _ in range(50):
        rows = query(conn, f"SELECT state, {columns} FROM system.runtime.queries "
                           f"WHERE {where} ORDER BY created DESC LIMIT 1")
        if rows and rows[0][0] == "FINISHED":
            return rows[0][1:]
        time.sleep(0.1)
    raise AssertionError(f"the newest statement where {where} did not finish: {rows}")


class Background:
    """A query running in a thread, as `user` after the `session` statements; once joined,
    `.rows` or `.error`, and the `.seconds` the query itself took."""

    def __init__(self, uri, sql, user="tester", session=()):
        self.rows = None
        self.error = None
        self.seconds = None
        self.thread = threading.Thread(target=self._run, args=(uri, sql, user, tuple(session)),
                                       daemon=True)
        self.thread.start()

    def _run(self, uri, sql, user, session):
        conn = connect(uri, user)
        try:
            for statement in session:
                query(conn, statement)
            start = time.time()
            self.rows = query(conn, sql)
            self.seconds = time.time() - start
        except Exception as e:  # the test looks at it
            self.error = e
        finally:
            conn.close()

    def alive(self):
        return self.thread.is_alive()

    def join(self, timeout=600):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "background query did not end"
        return self


class Cluster:
    """`history`: the scheduler's query history store (default: a SQLite file in the cluster's
    directory); `env`: extra environment of every process (e.g. OTEL_EXPORTER_OTLP_ENDPOINT)."""

    def __init__(self, etc: Path, password_file: Path | None = None, executors: int = 2,
                 history: str | None = None, env: dict | None = None, vcores: int = 2,
                 scheduler_args: list | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="tributary-cluster-"))
        self.etc = etc
        self.env = {**os.environ, **(env or {})}
        self.scheduler_port = free_port()
        self.flight_port = free_port()
        self.http_port = free_port()
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.uri = f"grpc://127.0.0.1:{self.flight_port}"
        self.history = history or str(self.dir / "history.db")
        self.password_file = password_file
        self.scheduler_args = scheduler_args or []
        self.procs = []
        self.start_scheduler()
        self.executor_http = []
        self.vcores = vcores
        for _ in range(executors):
            self.add_executor()

    def add_executor(self):
        """Starts one more executor process; returns its (name, process, HTTP URL)."""
        n = len(self.executor_http)
        http_port = free_port()
        http = f"http://127.0.0.1:{http_port}"
        self.executor_http.append(http)
        name = f"executor{n}"
        self._spawn(name, [BIN, "executor", "--scheduler", f"127.0.0.1:{self.scheduler_port}",
                           "--etc", str(self.etc), "--bind-host", "127.0.0.1",
                           "--flight-port", str(free_port()), "--grpc-port", str(free_port()),
                           "--http-port", str(http_port),
                           "--work-dir", str(self.dir / f"work{n}"), "--vcores", str(self.vcores)])
        return name, self.procs[-1][1], http

    def start_scheduler(self):
        args = [BIN, "scheduler", "--etc", str(self.etc), "--scheduler-addr", f"127.0.0.1:{self.scheduler_port}",
                "--flight-sql-addr", f"127.0.0.1:{self.flight_port}", "--external-host", "127.0.0.1",
                "--http-addr", f"127.0.0.1:{self.http_port}", "--history-url", self.history]
        if self.password_file:
            args += ["--password-file", str(self.password_file)]
        self._spawn("scheduler", args + self.scheduler_args)

    def restart_scheduler(self):
        """Stops the scheduler process (SIGTERM) and starts a new one on the same ports and
        history store; executors reconnect."""
        for i, (name, p) in enumerate(self.procs):
            if name == "scheduler" and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(10)
        self.procs = [(n, p) for n, p in self.procs if n != "scheduler"]
        self.start_scheduler()

    def _spawn(self, name, args):
        log = open(self.dir / f"{name}.log", "ab")
        self.procs.append((name, subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env)))

    def wait_ready(self, user="tester", password="secret", timeout=120, connect_with=None):
        """Waits until a query runs; `connect_with(cluster)` makes the connection when user and
        password will not do (TLS, JWT)."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            for name, p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.logs()}")
            try:
                conn = connect_with(self) if connect_with else connect(self.uri, user, password)
                try:
                    if query(conn, "SELECT 1") == [(1,)]:
                        return
                finally:
                    conn.close()
            except Exception as e:  # not up yet
                last = e
            time.sleep(0.3)
        raise RuntimeError(f"cluster not ready after {timeout}s: {last}\n{self.logs()}")

    def logs(self, tail=40):
        out = []
        for name, _ in self.procs:
            lines = (self.dir / f"{name}.log").read_text(errors="replace").splitlines()
            out.append(f"--- {name} ---\n" + "\n".join(lines[-tail:]))
        return "\n".join(out)

    def stop(self):
        # Executors first: they drain (SIGTERM) and ask the scheduler whether their files are
        # still needed.
        executors = [p for name, p in self.procs if name != "scheduler"]
        schedulers = [p for name, p in self.procs if name == "scheduler"]
        for group, grace in ((executors, 15), (schedulers, 5)):
            for p in group:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in group:
                try:
                    p.wait(grace)
                except subprocess.TimeoutExpired:
                    p.kill()


def etc_with(files: dict) -> Path:
    """A copy of the repository's etc/ in a new directory, with `files` (name: text or bytes)
    written into it."""
    etc = Path(tempfile.mkdtemp(prefix="tributary-etc-")) / "etc"
    shutil.copytree(REPO / "etc", etc)
    for name, content in files.items():
        if isinstance(content, bytes):
            (etc / name).write_bytes(content)
        else:
            (etc / name).write_text(content)
    return etc


def running(request, etc: Path, work: Path | None = None, **wait):
    """A started cluster on `etc` for a fixture to yield, ready as `Cluster.wait_ready(**wait)`
    says; stopped afterwards (its logs printed if a test failed)."""
    c = Cluster(etc)
    c.work = work
    try:
        c.wait_ready(**wait)
        yield c
    finally:
        if request.session.testsfailed:
            print(c.logs(60))
        c.stop()


@pytest.fixture(scope="session")
def cluster(request):
    yield from running(request, REPO / "etc")


@pytest.fixture
def conn(cluster):
    c = connect(cluster.uri)
    yield c
    c.close()
