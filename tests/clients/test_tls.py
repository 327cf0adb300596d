"""TLS and the internal shared secret, from certificates made in the test (a CA and a server
certificate for 127.0.0.1/localhost, Python's cryptography): clients (ADBC, pyarrow) connect
over TLS trusting the test CA and get right answers from queries that shuffle between
executors (internal TLS); a plaintext client and a client that does not trust the CA are
refused; an executor without the shared secret (or without TLS) cannot join; a process that
reaches an executor's Flight port without the secret cannot read shuffle data."""
import datetime
import ipaddress
import re
import subprocess
import time
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow.flight as flight
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import BIN, etc_with as etc_copy, free_port, query, running
from test_adbc import encode_statement_query

SECRET = "a-long-cluster-secret-0123456789"
JOIN = ("SELECT c_mktsegment, count(*), sum(o_totalprice) FROM tpch.tiny.orders "
        "JOIN tpch.tiny.customer ON o_custkey = c_custkey GROUP BY c_mktsegment ORDER BY c_mktsegment")


def make_certificates(directory: Path):
    """A CA, and a server certificate it signed for 127.0.0.1 and localhost."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tributary test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tributary")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_pem = ca.public_bytes(pem)
    (directory / "ca.pem").write_bytes(ca_pem)
    (directory / "server.pem").write_bytes(
        cert.public_bytes(pem) + ca_pem + key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return ca_pem


def config(secret=SECRET, internal_tls=True):
    text = ("http-server.https.enabled=true\n"
            "http-server.https.keystore.path=etc/server.pem\n")
    if internal_tls:
        text += ("internal-communication.https.required=true\n"
                 "internal-communication.https.truststore.path=etc/ca.pem\n")
    if secret:
        text += f"internal-communication.shared-secret={secret}\n"
    return text


def etc_with(text: str, certificates_from: Path | None = None):
    """etc/ with `text` as config.properties and new certificates (or those of another etc/)."""
    if certificates_from is None:
        etc = etc_copy({"config.properties": text})
        return etc, make_certificates(etc)
    etc = etc_copy({"config.properties": text,
                    **{name: (certificates_from / name).read_bytes()
                       for name in ("ca.pem", "server.pem")}})
    return etc, (etc / "ca.pem").read_bytes()


def connect_tls(uri, ca_pem, user="tester"):
    return flightsql.connect(uri, db_kwargs={
        "username": user, "password": "secret",
        "adbc.flight.sql.client_option.tls_root_certs": ca_pem.decode()}, autocommit=True)


@pytest.fixture(scope="module")
def tls_cluster(request):
    etc, ca_pem = etc_with(config())

    def tls_uri(c):
        return f"grpc+tls://127.0.0.1:{c.flight_port}"

    for c in running(request, etc, connect_with=lambda c: connect_tls(tls_uri(c), ca_pem)):
        c.tls_uri = tls_uri(c)
        c.ca_pem = ca_pem
        yield c


def test_adbc_over_tls_runs_shuffled_queries(tls_cluster):
    conn = connect_tls(tls_cluster.tls_uri, tls_cluster.ca_pem)
    try:
        rows = query(conn, JOIN)
        assert [r[0] for r in rows] == ["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"]
        assert sum(r[1] for r in rows) == 15000
        # Both executors took part (shuffle between them went over internal TLS).
        nodes = query(conn, "SELECT count(*) FROM system.runtime.nodes WHERE NOT coordinator")
        assert nodes == [(2,)]
        # A join of sf1 tables: shuffles of thousands of batches over internal TLS.
        assert query(conn, "SELECT count(DISTINCT l_orderkey) FROM tpch.sf1.lineitem "
                           "JOIN tpch.sf1.orders ON l_orderkey = o_orderkey "
                           "WHERE o_orderkey < 100000") == query(
            conn, "SELECT count(*) FROM tpch.sf1.orders WHERE o_orderkey < 100000")
    finally:
        conn.close()


def test_pyarrow_over_tls(tls_cluster):
    client = flight.FlightClient(tls_cluster.tls_uri, tls_root_certs=tls_cluster.ca_pem)
    try:
        token = client.authenticate_basic_token(b"tester", b"secret")
        options = flight.FlightCallOptions(headers=[token])
        info = client.get_flight_info(
            flight.FlightDescriptor.for_command(encode_statement_query(JOIN)), options)
        total = 0
        for endpoint in info.endpoints:
            total += client.do_get(endpoint.ticket, options).read_all().num_rows
        assert total == 5
    finally:
        client.close()


def test_plaintext_and_untrusting_clients_are_refused(tls_cluster):
    plain = f"grpc://127.0.0.1:{tls_cluster.flight_port}"
    with pytest.raises(adbc_driver_manager.Error):
        conn = flightsql.connect(plain, db_kwargs={"username": "tester", "password": "secret"},
                                 autocommit=True)
        try:
            query(conn, "SELECT 1")
        finally:
            conn.close()
    # TLS, but not trusting the test CA: the server's certificate is refused.
    with pytest.raises(adbc_driver_manager.Error) as err:
        conn = flightsql.connect(tls_cluster.tls_uri,
                                 db_kwargs={"username": "tester", "password": "secret"},
                                 autocommit=True)
        try:
            query(conn, "SELECT 1")
        finally:
            conn.close()
    assert "certificate" in str(err.value).lower(), str(err.value)


def spawn_executor(cluster, etc, name):
    work = cluster.dir / name
    cluster._spawn(name, [BIN, "executor", "--scheduler", f"127.0.0.1:{cluster.scheduler_port}",
                          "--etc", str(etc), "--bind-host", "127.0.0.1",
                          "--flight-port", str(free_port()), "--grpc-port", str(free_port()),
                          "--work-dir", str(work), "--vcores", "2"])
    return cluster.dir / f"{name}.log"


@pytest.mark.parametrize("name, text", [
    ("wrong_secret", config(secret="not-the-cluster-secret-9876543210")),
    ("no_secret", config(secret=None)),
    ("no_tls", config(internal_tls=False)),
])
def test_an_executor_without_the_secret_or_tls_cannot_join(tls_cluster, name, text):
    etc, _ = etc_with(text, certificates_from=tls_cluster.etc)
    log = spawn_executor(tls_cluster, etc, name)
    time.sleep(8)
    conn = connect_tls(tls_cluster.tls_uri, tls_cluster.ca_pem)
    try:
        assert query(conn, "SELECT count(*) FROM system.runtime.nodes WHERE NOT coordinator") == [(2,)]
        # The cluster still answers, on its own executors.
        assert len(query(conn, JOIN)) == 5
    finally:
        conn.close()
    text = log.read_text(errors="replace")
    assert "Executor registration failed" in text, text
    if name != "no_tls":
        assert "without the cluster's shared secret (internal-communication.shared-secret)" in text
    # It gave up and exited rather than running outside the cluster.
    process = next(p for n, p in tls_cluster.procs if n == name)
    assert process.poll() not in (None, 0)


def test_shuffle_data_needs_the_secret(tls_cluster):
    log = (tls_cluster.dir / "executor0.log").read_text(errors="replace")
    port = re.search(r"executor Flight service listening.*?127\.0\.0\.1:(\d+)", log)
    assert port, log
    client = flight.FlightClient(f"grpc+tls://127.0.0.1:{port.group(1)}",
                                 tls_root_certs=tls_cluster.ca_pem)
    try:
        with pytest.raises(flight.FlightUnauthenticatedError) as err:
            client.do_get(flight.Ticket(b"any")).read_all()
        assert "shared secret" in str(err.value)
    finally:
        client.close()


def test_the_cli_over_tls(tls_cluster):
    ca = tls_cluster.etc / "ca.pem"
    out = subprocess.run([BIN, "sql", "--server", tls_cluster.tls_uri, "--truststore-path", str(ca),
                          "--user", "tester", "--password", "secret", "--output-format", "CSV",
                          "-e", "SELECT count(*) FROM tpch.tiny.nation"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].strip('"') == "25", out.stdout
    # The system's CAs do not sign the test certificate.
    out = subprocess.run([BIN, "sql", "--server", tls_cluster.tls_uri, "-e", "SELECT 1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "cannot connect" in out.stderr or "cannot authenticate" in out.stderr, out.stderr
