"""Executors leaving and joining a running cluster (issue 9, what Kubernetes does to pods):
drained by SIGTERM one by one under a steady stream of shuffled joins while new ones start,
drained and brought back (cancelled drain), killed with SIGKILL in the middle of a
multi-stage query, and started while a query runs. Every answer is checked against a run on
an undisturbed cluster. The figures (drain to exit, queries completed, extra wall time of a
loss) are printed and written to the cluster directory as figures.json."""
import json
import signal
import subprocess
import threading
import time
import urllib.request

import pyarrow.flight as flight
import pytest

from conftest import BIN, REPO, Background, Cluster, connect, query
from test_adbc import encode_statement_query
from test_observability import metrics

# A join with shuffles on both sides (hash-partitioned aggregation above it), small enough to
# run many times a minute on the debug build.
JOINS = [
    ("SELECT n_name, count(*) AS orders, sum(o_totalprice) AS total "
     "FROM tpch.tiny.orders JOIN tpch.tiny.customer ON o_custkey = c_custkey "
     "JOIN tpch.tiny.nation ON c_nationkey = n_nationkey GROUP BY n_name ORDER BY n_name"),
    ("SELECT l_returnflag, l_linestatus, count(*), sum(l_quantity) "
     "FROM tpch.tiny.lineitem JOIN tpch.tiny.orders ON l_orderkey = o_orderkey "
     "WHERE o_orderstatus = 'F' GROUP BY l_returnflag, l_linestatus ORDER BY 1, 2"),
]
# Multi-stage and long enough (about 10 s on the debug build) to lose an executor in.
LONG_QUERY = ("SELECT l_returnflag, count(*), sum(l_extendedprice) FROM tpch.sf1.lineitem "
              "JOIN tpch.sf1.orders ON l_orderkey = o_orderkey GROUP BY l_returnflag "
              "ORDER BY l_returnflag")


def http(url, method="GET", body=None):
    request = urllib.request.Request(url, method=method, data=body,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except urllib.error.URLError as e:  # not listening (yet, or any more)
        return 0, str(e.reason)


def state(executor_http):
    return json.loads(http(executor_http + "/v1/info/state")[1])


def metrics_of(executor_http):
    """An executor's metrics; none while it is not listening (yet)."""
    try:
        return metrics(executor_http)
    except urllib.error.URLError:
        return {}


def executor_tasks(executor_http):
    """Tasks this executor finished so far."""
    return metrics_of(executor_http).get(("tributary_executor_tasks_total", (("state", "finished"),)), 0)


def running_tasks(executor_http):
    return metrics_of(executor_http).get(("tributary_executor_running_tasks", ()), 0)


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def figures(cluster, **values):
    path = cluster.dir / "figures.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(values)
    path.write_text(json.dumps(data, indent=2))
    print(f"figures: {values}")


@pytest.fixture(scope="module")
def expected():
    """The answers of an undisturbed cluster."""
    c = Cluster(REPO / "etc", executors=2)
    try:
        c.wait_ready()
        conn = connect(c.uri)
        answers = {sql: query(conn, sql) for sql in JOINS}
        start = time.time()
        answers[LONG_QUERY] = query(conn, LONG_QUERY)
        answers["long_seconds"] = time.time() - start
        conn.close()
        yield answers
    finally:
        c.stop()


def three_executors(request, scheduler_args=None):
    c = Cluster(REPO / "etc", executors=3, scheduler_args=scheduler_args)
    try:
        c.wait_ready()
        yield c
    finally:
        if request.session.testsfailed:
            print(c.logs(80))
        c.stop()


@pytest.fixture
def fleet(request):
    yield from three_executors(request)


@pytest.fixture
def strict_fleet(request):
    """No task retries: a drained executor that dropped files a query still needed would
    fail that query instead of having them computed again."""
    yield from three_executors(request, ["--retry-policy", "NONE"])


class Load:
    """Clients running the join queries in a loop until stopped; every answer is checked."""

    def __init__(self, uri, expected, clients=2):
        self.expected = expected
        self.done = 0
        self.failures = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(uri, n), daemon=True)
                        for n in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self, uri, n):
        conn = connect(uri)
        i = n
        while not self.stopping.is_set():
            sql = JOINS[i % len(JOINS)]
            i += 1
            try:
                rows = query(conn, sql)
                if rows != self.expected[sql]:
                    self.failures.append(f"wrong answer to {sql}: {rows}")
                self.done += 1
            except Exception as e:  # counted: the test demands none
                self.failures.append(f"{sql}: {e}")
        conn.close()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(300)


def test_scale_down_under_load_fails_no_query(strict_fleet, expected):
    """Executors are drained one by one with SIGTERM (as Kubernetes stops a pod) while new
    ones start and clients keep running shuffled joins: no query fails, every answer is
    right, and each drained executor exits 0 within its grace period."""
    fleet = strict_fleet
    load = Load(fleet.uri, expected)
    drain_seconds = []
    try:
        wait_for(lambda: load.done >= 4, 120, "the load to start")
        for round_ in range(3):
            # The oldest executor still running goes; a new one takes its place.
            name, victim = next((n, p) for n, p in fleet.procs
                                if n.startswith("executor") and p.poll() is None)
            new_name, _, new_http = fleet.add_executor()
            wait_for(lambda: http(new_http + "/readyz")[0] == 200, 60, f"{new_name} ready")
            before = load.done
            started = time.time()
            victim.send_signal(signal.SIGTERM)
            code = victim.wait(600)
            drain_seconds.append(round(time.time() - started, 2))
            assert code == 0, f"{name} exited with {code}:\n{fleet.logs()}"
            log = (fleet.dir / f"{name}.log").read_text(errors="replace")
            assert "drained in" in log and "timed out" not in log, log[-3000:]
            # Queries keep completing after the executor left.
            wait_for(lambda: load.done >= before + 2, 120, f"queries after {name} left")
            assert not load.failures, load.failures
    finally:
        load.stop()
    assert not load.failures, load.failures
    figures(fleet, drain_to_exit_seconds=drain_seconds, queries_completed_during_loop=load.done)


def kill_mid_query(cluster):
    """Runs LONG_QUERY and SIGKILLs an executor once it has finished some of the query's
    tasks (shuffle outputs it holds) and runs others; returns the query's outcome."""
    background = Background(cluster.uri, LONG_QUERY)
    executors = [(p, url) for (n, p), url in zip(
        [np for np in cluster.procs if np[0].startswith("executor")], cluster.executor_http)]
    victim = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline and background.alive():
        for p, url in executors:
            if running_tasks(url) > 0 and executor_tasks(url) > 0:
                victim = p
                break
        time.sleep(0.2)
    assert victim is not None, "no executor ran the query's tasks"
    victim.send_signal(signal.SIGKILL)
    return background.join()


def test_executor_killed_mid_query_the_query_still_succeeds(fleet, expected):
    """SIGKILL of an executor running tasks of a multi-stage query: its tasks run again
    elsewhere, its lost shuffle outputs are computed again, and the answer is right."""
    result = kill_mid_query(fleet)
    assert result.error is None, f"{result.error}\n{fleet.logs()}"
    assert result.rows == expected[LONG_QUERY]
    figures(fleet, executor_loss_extra_seconds=round(result.seconds - expected["long_seconds"], 2),
            undisturbed_seconds=round(expected["long_seconds"], 2))


def test_bad_retry_policy_is_refused():
    out = subprocess.run([BIN, "scheduler", "--retry-policy", "SOMETIMES"], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert "--retry-policy" in out.stderr and "QUERY" in out.stderr, out.stderr


class UnreadResult:
    """A query whose result is announced (GetFlightInfo) and not read yet: the executors
    holding its files must keep them."""

    SQL = "SELECT l_orderkey % 97 AS k, count(*) AS n FROM tpch.tiny.lineitem GROUP BY 1"

    def __init__(self, uri):
        self.client = flight.FlightClient(uri)
        header = self.client.authenticate_basic_token("tester", "secret")
        self.options = flight.FlightCallOptions(headers=[header])
        descriptor = flight.FlightDescriptor.for_command(encode_statement_query(self.SQL))
        self.info = self.client.get_flight_info(descriptor, self.options)

    def read(self):
        rows = 0
        for endpoint in self.info.endpoints:
            rows += self.client.do_get(endpoint.ticket, self.options).read_all().num_rows
        return rows


def job_dirs(cluster, n):
    work = cluster.dir / f"work{n}"
    return [p.name for p in work.iterdir() if p.is_dir()] if work.exists() else []


def test_unread_result_keeps_a_drained_executor_until_read(strict_fleet):
    """An executor holding files of a result a client has not read yet stays (draining)
    until the client has read it, then exits 0; `tributary executor drain --wait` waits."""
    fleet = strict_fleet
    pinned = UnreadResult(fleet.uri)
    assert len(pinned.info.endpoints) > 1
    name, proc = [np for np in fleet.procs if np[0].startswith("executor")][0]
    assert job_dirs(fleet, 0), f"{name} holds no files of the result"
    waiter = subprocess.Popen([BIN, "executor", "drain", "--url", fleet.executor_http[0], "--wait"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: state(fleet.executor_http[0]) == "SHUTTING_DOWN", 10, f"{name} draining")
    time.sleep(4)
    assert proc.poll() is None, f"{name} left before its result was read"
    assert waiter.poll() is None, "drain --wait returned before the executor exited"
    assert pinned.read() == 97
    assert proc.wait(60) == 0
    _, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert "has exited" in err
    log = (fleet.dir / f"{name}.log").read_text(errors="replace")
    assert "drained in" in log, log[-3000:]


def test_cancelled_drain_returns_the_executor_to_service(strict_fleet, expected):
    """A drain started over HTTP (`tributary executor drain`) and cancelled half-way (an
    unread result keeps it from finishing): while draining the executor is not ready, is
    listed shutting_down and takes no task though queries run; once cancelled it is ready,
    stays up and takes tasks again."""
    fleet = strict_fleet
    pinned = UnreadResult(fleet.uri)
    name, proc = [np for np in fleet.procs if np[0].startswith("executor")][0]
    url = fleet.executor_http[0]
    assert job_dirs(fleet, 0), f"{name} holds no files of the result"
    drain = subprocess.run([BIN, "executor", "drain", "--url", url], capture_output=True, text=True, timeout=30)
    assert drain.returncode == 0, drain.stderr
    assert state(url) == "SHUTTING_DOWN"
    wait_for(lambda: http(url + "/readyz")[0] == 503, 10, f"{name} not ready")
    assert metrics(url)[("tributary_executor_draining", ())] == 1
    conn = connect(fleet.uri)
    try:
        # The scheduler knows at once (system.runtime.nodes, Trino's node states).
        wait_for(lambda: ("shutting_down",) in query(
            conn, "SELECT state FROM system.runtime.nodes WHERE NOT coordinator"), 10,
            "the scheduler to list the executor as shutting_down")
        wait_for(lambda: running_tasks(url) == 0, 60, f"{name} idle")
        before = executor_tasks(url)
        for _ in range(3):
            assert query(conn, JOINS[0]) == expected[JOINS[0]]
        assert executor_tasks(url) == before, f"{name} took tasks while draining"
        assert proc.poll() is None, f"{name} left with a result unread"
        cancel = subprocess.run([BIN, "executor", "drain", "--url", url, "--cancel"],
                                capture_output=True, text=True, timeout=30)
        assert cancel.returncode == 0, cancel.stderr
        assert state(url) == "ACTIVE"
        wait_for(lambda: http(url + "/readyz")[0] == 200, 30, f"{name} ready again")
        deadline = time.time() + 120
        while executor_tasks(url) <= before and time.time() < deadline:
            assert query(conn, JOINS[0]) == expected[JOINS[0]]
        assert executor_tasks(url) > before, f"{name} took no task after its drain was cancelled"
    finally:
        conn.close()
    assert pinned.read() == 97
    time.sleep(2)
    assert proc.poll() is None, f"{name} exited after its drain was cancelled"


def test_bad_state_changes_are_refused(fleet):
    url = fleet.executor_http[0]
    status, text = http(url + "/v1/info/state", "PUT", b'"SLEEPING"')
    assert status == 400 and "SHUTTING_DOWN" in text
    assert state(url) == "ACTIVE"


def test_new_executor_receives_tasks_of_a_running_query(expected):
    """An executor started while a query runs on a one-executor cluster takes tasks of that
    query's later stages within seconds."""
    c = Cluster(REPO / "etc", executors=1)
    try:
        c.wait_ready()
        background = Background(c.uri, LONG_QUERY)
        wait_for(lambda: running_tasks(c.executor_http[0]) > 0, 120, "the query running")
        joined = time.time()
        _, _, new_http = c.add_executor()
        wait_for(lambda: running_tasks(new_http) > 0 or executor_tasks(new_http) > 0,
                 120, "the new executor taking tasks")
        took = time.time() - joined
        assert background.alive(), "the query ended before the new executor took a task"
        background.join()
        assert background.error is None, background.error
        assert background.rows == expected[LONG_QUERY]
        figures(c, new_executor_first_task_seconds=round(took, 2))
    finally:
        c.stop()
