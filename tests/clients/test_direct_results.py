"""Results read straight from the executors (`flight-sql.results-from-executors=true` in
etc/config.properties): a finished query's endpoints point at the executors holding its
partitions, so large results come back in parallel without passing through the scheduler.
The executors' Flight ports do not know the clients' passwords: each ticket carries the
scheduler's signature made with the cluster's shared secret, which the executor checks
instead; without the secret nothing else is served to a client."""
import subprocess
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import BIN, Cluster, connect, etc_with, query
from test_adbc import encode_statement_query
from test_drain import job_dirs

SECRET = "direct-Results-Secret-7Qx2"
CONFIG = f"flight-sql.results-from-executors=true\ninternal-communication.shared-secret={SECRET}\n"
SQL = "SELECT o_orderkey, o_custkey, o_comment FROM tpch.sf1.orders WHERE o_orderkey % 3 = 1"


@pytest.fixture(scope="module")
def direct_cluster():
    passwords = Path(tempfile.mkdtemp(prefix="tributary-direct-")) / "passwords"
    passwords.write_text("tester:secret\n")
    c = Cluster(etc_with({"config.properties": CONFIG}), password_file=passwords)
    try:
        c.wait_ready()
        yield c
    finally:
        c.stop()


def signed_in(uri):
    client = flight.FlightClient(uri)
    return client, flight.FlightCallOptions(headers=[client.authenticate_basic_token("tester", "secret")])


def test_endpoints_point_at_the_executors_and_read_without_credentials(direct_cluster):
    client, options = signed_in(direct_cluster.uri)
    info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(SQL)), options)
    assert info.total_records > 0, "announced once finished, with its row count"
    assert len(info.endpoints) >= 2
    locations = [[loc.uri.decode() for loc in e.locations] for e in info.endpoints]
    assert all(len(loc) == 1 for loc in locations), locations
    assert not any(direct_cluster.uri in loc[0] for loc in locations), locations
    assert len({loc[0] for loc in locations}) == 2, f"both executors hold partitions: {locations}"
    tables = []
    for endpoint in info.endpoints:
        # A client of the executor alone: no credentials, only the signed ticket.
        executor = flight.FlightClient(endpoint.locations[0])
        reader = executor.do_get(endpoint.ticket)
        assert reader.schema == info.schema
        tables.append(reader.read_all())
    table = pa.concat_tables(tables)
    assert table.num_rows == info.total_records
    conn = connect(direct_cluster.uri)
    try:
        # ADBC follows the locations too.
        with conn.cursor() as cur:
            cur.execute(SQL)
            through_adbc = cur.fetch_arrow_table()
        [(count, total)] = query(conn, "SELECT count(*), sum(o_orderkey) FROM tpch.sf1.orders "
                                       "WHERE o_orderkey % 3 = 1")
        assert table.num_rows == through_adbc.num_rows == count
        assert pa.compute.sum(table["o_orderkey"]).as_py() == total
        assert sorted(through_adbc["o_orderkey"].to_pylist()) == sorted(table["o_orderkey"].to_pylist())
        # An ordered result is merged by the scheduler: one endpoint, read from it.
        ordered = client.get_flight_info(flight.FlightDescriptor.for_command(
            encode_statement_query("SELECT n_name FROM tpch.tiny.nation ORDER BY n_name")), options)
        [endpoint] = ordered.endpoints
        assert not endpoint.locations
        names = client.do_get(endpoint.ticket, options).read_all()["n_name"].to_pylist()
        assert names == sorted(names) and len(names) == 25
    finally:
        conn.close()


def test_executors_serve_clients_nothing_but_signed_tickets(direct_cluster):
    client, options = signed_in(direct_cluster.uri)
    info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(SQL)), options)
    endpoint = info.endpoints[0]
    executor = flight.FlightClient(endpoint.locations[0])
    ticket = endpoint.ticket.ticket
    # The signature is the ticket's last bytes: one flipped, the executor refuses it.
    forged = flight.Ticket(ticket[:-1] + bytes([ticket[-1] ^ 1]))
    with pytest.raises(flight.FlightUnauthenticatedError, match="not signed by this cluster"):
        executor.do_get(forged).read_all()
    # Ballista's own calls need the cluster's secret.
    with pytest.raises(flight.FlightUnauthenticatedError, match="shared secret"):
        list(executor.list_actions())
    with pytest.raises(flight.FlightUnauthenticatedError, match="shared secret"):
        executor.do_get(flight.Ticket(b"not a result ticket")).read_all()
    # The scheduler still serves the same ticket to its own authenticated client.
    assert client.do_get(endpoint.ticket, options).read_all().num_rows > 0


def test_a_result_read_from_the_executors_lets_their_files_go(direct_cluster):
    """Each executor tells the scheduler when a client has read one of its partitions to the
    end: once every partition is read, the job's files are deleted on both executors, as when
    the scheduler forwards the result (not after query.client.timeout, 5 minutes)."""
    before = [set(job_dirs(direct_cluster, n)) for n in (0, 1)]
    client, options = signed_in(direct_cluster.uri)
    info = client.get_flight_info(flight.FlightDescriptor.for_command(encode_statement_query(SQL)), options)
    new = [set(job_dirs(direct_cluster, n)) - before[n] for n in (0, 1)]
    [job] = new[0] | new[1]
    assert all(job in dirs for dirs in new), f"both executors hold files of {job}: {new}"
    *first, last = info.endpoints
    for endpoint in first:
        flight.FlightClient(endpoint.locations[0]).do_get(endpoint.ticket).read_all()
    # A partition is still unread: the files stay.
    time.sleep(2)
    assert all(job in job_dirs(direct_cluster, n) for n in (0, 1))
    flight.FlightClient(last.locations[0]).do_get(last.ticket).read_all()
    deadline = time.time() + 20
    while any(job in job_dirs(direct_cluster, n) for n in (0, 1)):
        assert time.time() < deadline, f"files of {job} still on the executors after every partition was read"
        time.sleep(0.2)


def test_results_from_executors_need_the_secret_when_clients_authenticate():
    etc = etc_with({"config.properties": "flight-sql.results-from-executors=true\n"})
    passwords = Path(tempfile.mkdtemp(prefix="tributary-direct-")) / "passwords"
    passwords.write_text("tester:secret\n")
    out = subprocess.run([BIN, "scheduler", "--etc", str(etc), "--password-file", str(passwords),
                          "--flight-sql-addr", "127.0.0.1:0", "--scheduler-addr", "127.0.0.1:0",
                          "--http-addr", "off", "--history-url", "none"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "flight-sql.results-from-executors=true needs internal-communication.shared-secret" in out.stderr, out.stderr
    # A bad value is named.
    etc = etc_with({"config.properties": "flight-sql.results-from-executors=sometimes\n"})
    out = subprocess.run([BIN, "scheduler", "--etc", str(etc), "--flight-sql-addr", "127.0.0.1:0",
                          "--scheduler-addr", "127.0.0.1:0", "--http-addr", "off", "--history-url", "none"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "flight-sql.results-from-executors" in out.stderr, out.stderr
