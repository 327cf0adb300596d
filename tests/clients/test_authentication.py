"""Authentication as Trino configures it (etc/config.properties http-server.authentication.type,
etc/password-authenticator.properties) on a multi-process cluster: JWT bearer tokens signed
with an RSA key made in the test (accepted: the user is the token's subject; expired, forged,
wrong issuer or audience: UNAUTHENTICATED), bcrypt passwords beside them, JWT alone refusing
passwords, the web UI taking both, and bad settings stopping start-up with the key named."""
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import bcrypt
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import BIN, Cluster, connect, etc_with as etc_copy, query, running

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def token(subject="jwt_user", expires_in=600, key=KEY, issuer="https://idp.example",
          audience="tributary"):
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + expires_in, "iss": issuer, "aud": audience}
    return jwt.encode(claims, key, algorithm="RS256")


def bearer(uri, value):
    return flightsql.connect(uri, db_kwargs={
        "adbc.flight.sql.authorization_header": f"Bearer {value}"}, autocommit=True)


def etc_with(config: str, password_lines: str | None = None) -> Path:
    files = {"jwt-public.pem": PUBLIC_PEM, "config.properties": config}
    if password_lines is not None:
        files["password.db"] = password_lines
        files["password-authenticator.properties"] = (
            "password-authenticator.name=file\nfile.password-file=etc/password.db\n")
    return etc_copy(files)


JWT_SETTINGS = ("http-server.authentication.jwt.key-file=etc/jwt-public.pem\n"
                "http-server.authentication.jwt.required-issuer=https://idp.example\n"
                "http-server.authentication.jwt.required-audience=tributary\n")


@pytest.fixture(scope="module")
def auth_cluster(request):
    hashed = bcrypt.hashpw(b"s3cret-pw", bcrypt.gensalt(rounds=8)).decode()
    etc = etc_with("http-server.authentication.type=PASSWORD,JWT\n" + JWT_SETTINGS,
                   f"alice:{hashed}\n")
    yield from running(request, etc, user="alice", password="s3cret-pw")


def refused(make_connection):
    with pytest.raises(adbc_driver_manager.Error) as err:
        conn = make_connection()
        try:
            query(conn, "SELECT 1")
        finally:
            conn.close()
    assert err.value.status_code == adbc_driver_manager.AdbcStatusCode.UNAUTHENTICATED, str(err.value)
    return str(err.value)


def test_jwt_bearer_tokens_authenticate_their_subject(auth_cluster):
    conn = bearer(auth_cluster.uri, token("jwt_user"))
    try:
        assert query(conn, "SELECT count(*) FROM tpch.tiny.nation /* jwt marker */") == [(25,)]
    finally:
        conn.close()
    alice = connect(auth_cluster.uri, "alice", "s3cret-pw")
    try:
        users = query(alice, "SELECT \"user\" FROM system.runtime.queries "
                             "WHERE query LIKE '%jwt marker%' AND query NOT LIKE '%system.runtime%'")
        assert users == [("jwt_user",)], users
    finally:
        alice.close()


def test_bad_tokens_are_unauthenticated(auth_cluster):
    assert "expired" in refused(lambda: bearer(auth_cluster.uri, token(expires_in=-60)))
    assert "bad signature" in refused(lambda: bearer(auth_cluster.uri, token(key=OTHER_KEY)))
    assert "wrong issuer" in refused(lambda: bearer(auth_cluster.uri, token(issuer="https://evil")))
    assert "wrong audience" in refused(lambda: bearer(auth_cluster.uri, token(audience="other")))
    assert "invalid JWT" in refused(lambda: bearer(auth_cluster.uri, "not-a-token"))
    # The scheduler's own session keys are not bearer tokens.
    good = token()
    ok = bearer(auth_cluster.uri, good)
    try:
        query(ok, "SELECT 1")
    finally:
        ok.close()
    assert "invalid JWT" in refused(lambda: bearer(auth_cluster.uri, f"jwt:{good}"))
    # An HMAC token made with the public key as secret (algorithm confusion) is refused.
    forged = jwt.encode({"sub": "admin", "exp": int(time.time()) + 600, "iss": "https://idp.example",
                         "aud": "tributary"}, "x" * 64, algorithm="HS256")
    assert "cannot verify" in refused(lambda: bearer(auth_cluster.uri, forged))


def test_passwords_still_work_beside_jwt(auth_cluster):
    conn = connect(auth_cluster.uri, "alice", "s3cret-pw")
    try:
        assert query(conn, "SELECT 1") == [(1,)]
    finally:
        conn.close()
    refused(lambda: connect(auth_cluster.uri, "alice", "wrong"))


def test_web_ui_takes_bearer_tokens(auth_cluster):
    def status(headers):
        request = urllib.request.Request(f"{auth_cluster.http}/v1/query", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as e:
            return e.code

    assert status({"Authorization": f"Bearer {token()}"}) == 200
    assert status({"Authorization": f"Bearer {token(expires_in=-60)}"}) == 401
    assert status({}) == 401


def test_the_cli_takes_an_access_token(auth_cluster):
    def run(value):
        return subprocess.run([BIN, "sql", "--server", auth_cluster.uri, "--access-token", value,
                               "--output-format", "CSV", "-e", "SELECT count(*) FROM tpch.tiny.region"],
                              capture_output=True, text=True, timeout=120)

    out = run(token("cli_user"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].strip('"') == "5", out.stdout
    out = run(token(expires_in=-60))
    assert out.returncode != 0 and "expired" in out.stderr, out.stderr


def test_jwt_alone_refuses_passwords():
    etc = etc_with("http-server.authentication.type=JWT\n" + JWT_SETTINGS)
    c = Cluster(etc, executors=1)
    try:
        c.wait_ready(connect_with=lambda c: bearer(c.uri, token("only_jwt")))
        assert "password authentication is not enabled" in refused(
            lambda: connect(c.uri, "alice", "anything"))
    finally:
        c.stop()


@pytest.mark.parametrize("config, expected", [
    ("http-server.authentication.type=JWT\n", "http-server.authentication.jwt.key-file"),
    ("http-server.authentication.type=KERBEROS\n", "KERBEROS is not supported"),
    ("http-server.authentication.type=PASSWORD\n", "there is no"),
    ("http-server.authentication.type=JWT\nhttp-server.authentication.jwt.key-file=etc/missing.pem\n",
     "cannot read"),
    ("query.max-memory-per-node=lots\n", "query.max-memory-per-node=lots"),
    ("query.max-memroy-per-node=1GB\n", "query.max-memory-per-node"),
    ("query.client.timeout=soon\n", "query.client.timeout=soon: expected a duration"),
    ("join-distribution-type=FAST\n", "join-distribution-type=FAST: invalid value 'FAST'"),
    ("query.max-run-time=long\n", "query.max-run-time=long: invalid value 'long'"),
])
def test_bad_settings_stop_start_up(config, expected):
    etc = etc_with(config)
    out = subprocess.run([BIN, "scheduler", "--etc", str(etc), "--flight-sql-addr", "127.0.0.1:0",
                          "--scheduler-addr", "127.0.0.1:0", "--http-addr", "off",
                          "--history-url", "none"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert expected in out.stderr, out.stderr
