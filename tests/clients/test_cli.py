"""The `tributary sql` shell against the cluster: batch mode, output formats, errors, exit codes."""
import json
import subprocess

from conftest import BIN


def sql(cluster, *args, stdin=None):
    return subprocess.run([BIN, "sql", "--server", cluster.uri, "--user", "cli", *args],
                          capture_output=True, text=True, timeout=120, input=stdin)


def test_execute_csv_and_json(cluster):
    done = sql(cluster, "--output-format", "CSV", "-e", "SELECT n_nationkey, n_name FROM tpch.tiny.nation WHERE n_nationkey < 3 ORDER BY 1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == '0,ALGERIA\n1,ARGENTINA\n2,BRAZIL\n'
    done = sql(cluster, "--output-format", "json", "-e", "SELECT r_name FROM tpch.tiny.region ORDER BY r_regionkey LIMIT 1")
    assert json.loads(done.stdout) == {"r_name": "AFRICA"}


def test_script_with_session_and_use(cluster, tmp_path):
    script = tmp_path / "q.sql"
    script.write_text("USE tpch.tiny;\nSET SESSION join_distribution_type = 'PARTITIONED';\n"
                      "SELECT count(*) FROM nation n JOIN region r ON n.n_regionkey = r.r_regionkey;\n")
    done = sql(cluster, "--output-format", "TSV", "-f", str(script))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "25"


def test_errors_and_exit_codes(cluster):
    done = sql(cluster, "-e", "SELECT * FROM tpch.tiny.nope")
    assert done.returncode == 1
    assert "Query failed" in done.stderr and "NotFound" in done.stderr and "nope" in done.stderr
    unreachable = subprocess.run([BIN, "sql", "--server", "grpc://127.0.0.1:1", "-e", "SELECT 1"],
                                 capture_output=True, text=True, timeout=60)
    assert unreachable.returncode == 2
    assert "cannot connect to grpc://127.0.0.1:1" in unreachable.stderr
