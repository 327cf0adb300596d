"""The Kubernetes deployment (k8s/), the Dockerfile and the Grafana dashboard.

Offline: `kubectl kustomize` renders the base and every overlay; every rendered object of a
built-in kind validates against the Kubernetes OpenAPI schema (kubernetes-validate, strict);
the CRD kinds, which that schema does not know, are listed in CRD_KINDS and checked by hand;
checkov fails nothing on the overlays and the Dockerfile (CHECKOV_SKIPS are skipped by
annotations that give the reason); the autoscalers scale the executors and never the
scheduler; the Dockerfile is multi-stage and runs as a non-root user.

Against the built binary: every flag the manifests pass exists in its `--help`, and every
metric name (and label) that the prometheus-adapter rules, the HPAs, the KEDA triggers and the
Grafana dashboard use appears in the live /metrics of a real cluster started on the catalogs of
k8s/base/etc, with the environment the Secret provides, after a TPC-H query.
"""
import functools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import BIN, REPO, Cluster, connect, query

K8S = REPO / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
TARGETS = ["base"] + [f"overlays/{o}" for o in OVERLAYS]
# The Kubernetes version whose OpenAPI schema (bundled with kubernetes-validate) the
# rendered objects must satisfy.
K8S_VERSION = "1.35.0"
# Kinds from CRDs: kubernetes-validate has no schema for them, so they are not schema-checked;
# test_crd_objects checks their required fields instead. Any other kind without a schema fails.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}
SCHEDULER = "tributary-scheduler"
EXECUTOR = "tributary-executor"
# checkov (and kubectl, where the machine has none recent enough) live in their own venv,
# made by scripts/install-test-deps.sh: checkov's exact boto3 pin conflicts with the clients'.
TOOLS = Path(os.environ.get("TRIBUTARY_K8S_TOOLS") or Path.home() / ".cache/tributary/checkov-venv")
CHECKOV = str(TOOLS / "bin/checkov")
# Checks skipped by a `checkov.io/skip` annotation (whose reason is the annotation's value).
# Listed so that a new skip is a decision made here, not a silent one.
CHECKOV_SKIPS = {"CKV_K8S_43", "CKV_K8S_35"}
ADAPTER_VALUES = K8S / "overlays/hpa-metrics/prometheus-adapter-values.yaml"
DASHBOARD = K8S / "grafana/tributary-dashboard.json"
# Labels Prometheus adds to every scraped series (target labels), not the processes.
TARGET_LABELS = {"namespace", "pod", "instance", "job", "service", "container", "endpoint"}
METRIC = re.compile(r"\btributary_[a-z0-9_]+\b")


@functools.cache
def kubectl():
    """The machine's kubectl if its kustomize is v5 or later (components, labels), else the
    one scripts/install-test-deps.sh put beside checkov."""
    tried = []
    for path in (shutil.which("kubectl"), str(TOOLS / "bin/kubectl")):
        if not path or not os.path.exists(path):
            continue
        out = subprocess.run([path, "version", "--client"], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"Kustomize Version: v(\d+)", out)
        if m and int(m.group(1)) >= 5:
            return path
        tried.append(f"{path}: {out.strip() or 'no version'}")
    pytest.fail("no kubectl with kustomize v5 or later (run scripts/install-test-deps.sh); tried: "
                + ("; ".join(tried) or "none found"))


@functools.cache
def render(target: str) -> tuple:
    out = subprocess.run([kubectl(), "kustomize", str(K8S / target)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kubectl kustomize {target} failed:\n{out.stderr}"
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def objects(target, kind, name=None):
    return [d for d in render(target) if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(target, kind, name):
    found = objects(target, kind, name)
    assert len(found) == 1, f"{target}: expected one {kind}/{name}, found {len(found)}"
    return found[0]


def container(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return containers[0]


def flags(args):
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]


def flag_value(args, flag):
    return args[args.index(flag) + 1]


def autoscalers(target):
    return [d for d in render(target) if d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")]


# ---- (a) rendering and (b) schemas --------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_kustomize_renders(target):
    kinds = [d["kind"] for d in render(target)]
    for kind in ("Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount", "PodDisruptionBudget",
                 "NetworkPolicy"):
        assert kind in kinds, (target, kinds)
    one(target, "Deployment", SCHEDULER)
    one(target, "Deployment", EXECUTOR)
    if target == "base":
        assert all("namespace" not in d["metadata"] for d in render(target)), "the base is namespace-agnostic"
    else:
        assert {d["metadata"].get("namespace") for d in render(target) if d["kind"] != "Namespace"} == {"tributary"}
        assert autoscalers(target), f"{target} has no autoscaler"


@pytest.mark.parametrize("target", TARGETS)
def test_builtin_kinds_validate(target):
    errors = []
    for d in render(target):
        if (d["apiVersion"], d["kind"]) in CRD_KINDS:
            continue  # no schema: test_crd_objects
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{d['apiVersion']} {d['kind']}: no schema in Kubernetes {K8S_VERSION} and not in CRD_KINDS")
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{d['kind']}/{d['metadata']['name']}: {e.message} at {'.'.join(map(str, e.path))}")
    assert not errors, "\n".join(errors)


def test_crd_objects():
    """The CRD kinds' required fields, by hand, and what they point at exists."""
    seen = set()
    for target in TARGETS:
        services = {s["metadata"]["name"]: s for s in objects(target, "Service")}
        for d in render(target):
            key = (d["apiVersion"], d["kind"])
            if key not in CRD_KINDS:
                continue
            seen.add(key)
            name = f"{target}: {d['kind']}/{d['metadata']['name']}"
            spec = d["spec"]
            if d["kind"] == "ServiceMonitor":
                labels = spec["selector"]["matchLabels"]
                matched = [s for s in services.values()
                           if labels.items() <= s["metadata"].get("labels", {}).items()]
                assert len(matched) == 1, f"{name} selects {len(matched)} Services"
                ports = {p["name"] for p in matched[0]["spec"]["ports"]}
                assert spec["endpoints"], name
                for ep in spec["endpoints"]:
                    assert ep["port"] in ports and ep.get("path", "/metrics") == "/metrics", (name, ep)
            elif d["kind"] == "ScaledObject":
                ref = spec["scaleTargetRef"]
                assert ref["name"], name
                assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], name
                assert spec["triggers"], name
                for t in spec["triggers"]:
                    assert t["type"] and isinstance(t["metadata"], dict), (name, t)
                    if t["type"] == "prometheus":
                        m = t["metadata"]
                        assert m["serverAddress"].startswith("http") and m["query"], (name, t)
                        float(m["threshold"])
                    elif t["type"] == "cpu":
                        assert t["metricType"] in ("Utilization", "AverageValue"), (name, t)
                        float(t["metadata"]["value"])
                    else:
                        pytest.fail(f"{name}: trigger type {t['type']} not checked here")
    assert seen == CRD_KINDS, f"CRD_KINDS lists kinds no overlay renders: {CRD_KINDS - seen}"


# ---- (c) checkov ------------------------------------------------------------------------------

def checkov(args):
    assert os.path.exists(CHECKOV), f"checkov not found at {CHECKOV}: run scripts/install-test-deps.sh"
    out = subprocess.run([CHECKOV, *args, "-o", "json", "--skip-download", "--compact"],
                         capture_output=True, text=True, timeout=300)
    assert out.stdout.strip(), f"checkov printed nothing:\n{out.stderr[-3000:]}"
    report = json.loads(out.stdout)
    reports = report if isinstance(report, list) else [report]
    results = {"failed_checks": [], "skipped_checks": [], "passed_checks": [], "parsing_errors": []}
    for r in reports:
        for k in results:
            results[k] += r.get("results", {}).get(k, [])
    assert not results["parsing_errors"], results["parsing_errors"]
    assert results["passed_checks"], "checkov checked nothing"
    return results


def test_checkov_manifests(tmp_path):
    """Each overlay, as applied, passes every checkov Kubernetes check. The base alone may only
    fail CKV_K8S_21 (default namespace): it is namespace-agnostic by design and every overlay,
    which sets the namespace, passes that check."""
    for target in TARGETS:
        (tmp_path / f"{target.replace('/', '_')}.yaml").write_text(yaml.safe_dump_all(render(target)))
    results = checkov(["-d", str(tmp_path), "--framework", "kubernetes"])
    failed = [(c["file_path"], c["check_id"], c["resource"]) for c in results["failed_checks"]
              if not (c["file_path"].endswith("/base.yaml") and c["check_id"] == "CKV_K8S_21")]
    assert not failed, "\n".join(map(str, failed))
    for c in results["skipped_checks"]:
        assert c["check_id"] in CHECKOV_SKIPS, f"unexpected skip {c['check_id']} on {c['resource']}"
        assert len(c["check_result"].get("suppress_comment", "")) > 20, f"skip without a reason: {c}"


def test_checkov_dockerfile():
    results = checkov(["-f", str(REPO / "Dockerfile"), "--framework", "dockerfile"])
    assert not results["failed_checks"], [(c["check_id"], c["check_name"]) for c in results["failed_checks"]]
    assert not results["skipped_checks"]


# ---- the manifests' content -------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_pods_are_locked_down(target):
    for name in (SCHEDULER, EXECUTOR):
        d = one(target, "Deployment", name)
        pod = d["spec"]["template"]["spec"]
        c = container(d)
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] and sc["runAsUser"] == 10001 and sc["readOnlyRootFilesystem"], name
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name
        assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["automountServiceAccountToken"] is False, name
        sa = one(target, "ServiceAccount", pod["serviceAccountName"])
        assert sa["automountServiceAccountToken"] is False
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= c["resources"][kind].keys(), (name, kind)
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
        for path in ("/etc/tributary/catalog", "/etc/tributary/kafka"):
            cm = volumes[mounts[path]]["configMap"]["name"]
            assert objects(target, "ConfigMap", cm), (name, cm)


@pytest.mark.parametrize("target", TARGETS)
def test_scheduler(target):
    d = one(target, "Deployment", SCHEDULER)
    assert d["spec"]["replicas"] == 1 and d["spec"]["strategy"]["type"] == "Recreate"
    c = container(d)
    args = c["args"]
    assert args[0] == "scheduler"
    assert flag_value(args, "--external-host") == SCHEDULER
    assert flag_value(args, "--retry-policy") in ("NONE", "TASK", "QUERY")
    history = flag_value(args, "--history-url")
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert history.startswith("sqlite:///var/lib/tributary/") and "/var/lib/tributary" in mounts
    svc = one(target, "Service", SCHEDULER)
    assert {(p["name"], p["port"]) for p in svc["spec"]["ports"]} == {
        ("flight-sql", 50051), ("scheduler-grpc", 50050), ("http", 8080)}
    assert svc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("target", TARGETS)
def test_executor(target):
    d = one(target, "Deployment", EXECUTOR)
    pod = d["spec"]["template"]["spec"]
    c = container(d)
    args = c["args"]
    assert args[0] == "executor"
    assert flag_value(args, "--scheduler") == f"{SCHEDULER}:50050"
    assert flag_value(args, "--external-host") == "$(POD_IP)"
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    # The drain command finds the executor's HTTP port through the environment.
    assert env["TRIBUTARY_HTTP_PORT"]["value"] == flag_value(args, "--http-port") == "8081"
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["tributary", "executor", "drain", "--wait"]
    drain = int(flag_value(args, "--drain-timeout-seconds"))
    assert pod["terminationGracePeriodSeconds"] == 600 > drain
    work = flag_value(args, "--work-dir")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts[work]]["emptyDir"]["sizeLimit"], "the work dir is a sized emptyDir"
    svc = one(target, "Service", EXECUTOR)
    assert svc["spec"]["clusterIP"] == "None"
    assert {p["port"] for p in svc["spec"]["ports"]} == {50052, 50053, 8081}
    pdb = objects(target, "PodDisruptionBudget")
    assert len(pdb) == 1 and pdb[0]["spec"]["maxUnavailable"] == 1
    assert pdb[0]["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    assert container(one(target, "Deployment", SCHEDULER))["image"] == c["image"]
    if target != "base":
        assert "replicas" not in d["spec"], "the autoscaler owns the executor count"


@pytest.mark.parametrize("target", TARGETS)
def test_secrets_cover_the_catalogs(target):
    """Every ${ENV:NAME} of a catalog file is set on both roles, from a key the Secret has
    (a missing variable stops the process at start-up)."""
    wanted = set()
    for f in (K8S / "base/etc/catalog").glob("*.properties"):
        wanted |= set(re.findall(r"\$\{ENV:([A-Za-z0-9_]+)\}", f.read_text()))
    assert wanted
    secrets = {s["metadata"]["name"]: s.get("stringData", {}) for s in objects(target, "Secret")}
    for name in (SCHEDULER, EXECUTOR):
        env = {e["name"]: e for e in container(one(target, "Deployment", name))["env"]}
        for var in wanted:
            assert var in env, f"{name} lacks {var}"
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert ref["key"] in secrets[ref["name"]], (name, var, ref)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_scale_the_executors(overlay):
    target = f"overlays/{overlay}"
    found = autoscalers(target)
    assert found
    for a in found:
        ref = a["spec"]["scaleTargetRef"]
        assert ref.get("kind", "Deployment") == "Deployment" and ref.get("apiVersion", "apps/v1") == "apps/v1", ref
        assert ref["name"] == EXECUTOR != SCHEDULER, f"{a['kind']}/{a['metadata']['name']} scales {ref['name']}"
        assert container(one(target, "Deployment", ref["name"]))["args"][0] == "executor"
        if a["kind"] == "HorizontalPodAutoscaler":
            spec, lo, hi = a["spec"], a["spec"]["minReplicas"], a["spec"]["maxReplicas"]
        else:
            spec = a["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
            lo, hi = a["spec"]["minReplicaCount"], a["spec"]["maxReplicaCount"]
        assert 1 <= lo < hi
        behavior = spec["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 300
        assert behavior["scaleUp"]["stabilizationWindowSeconds"] < behavior["scaleDown"]["stabilizationWindowSeconds"]
        assert behavior["scaleDown"]["policies"] and behavior["scaleUp"]["policies"]


# ---- (e) the Dockerfile -----------------------------------------------------------------------

def dockerfile_stages():
    """[(FROM line, [(instruction, arguments)])] with continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append((rest.strip(), []))
        else:
            assert stages or instr == "ARG", f"{instr} before FROM"
            if stages:
                stages[-1][1].append((instr, rest.strip()))
    return stages


def test_dockerfile():
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: a build stage and a runtime stage"
    builder = [s for s in stages if re.search(r"\bAS\s+builder\b", s[0], re.I)]
    assert builder and builder[0][0].split()[0].startswith("rust:1.95-bookworm"), builder
    assert any(i == "RUN" and "cargo build --release" in a and "--bin tributary" in a for i, a in builder[0][1])
    final_from, final = stages[-1]
    assert final_from.split()[0] == "debian:bookworm-slim", final_from
    assert any(i == "COPY" and "--from=builder" in a and "/usr/local/bin/tributary" in a for i, a in final)
    users = [a for i, a in final if i == "USER"]
    assert users, "the runtime stage sets USER"
    user = users[-1].split(":")[0]
    assert user not in ("0", "root") and user == "10001", users
    # Nothing after USER switches back to root.
    after = final[[i for i, _ in final].index("USER") + 1:]
    assert not any(i == "USER" and a.split(":")[0] in ("0", "root") for i, a in after)
    entry = [json.loads(a) for i, a in final if i == "ENTRYPOINT"]
    assert entry and entry[-1] == ["tributary"]
    exposed = {int(p) for i, a in final if i == "EXPOSE" for p in a.split()}
    ports = set()
    for name in (SCHEDULER, EXECUTOR):
        ports |= {p["containerPort"] for p in container(one("base", "Deployment", name))["ports"]}
    assert ports <= exposed, ports - exposed
    ignore = (REPO / ".dockerignore").read_text().split()
    assert "target" in ignore and ".git" in ignore


# ---- the dashboard and the metric names ---------------------------------------------------------

def dashboard_exprs():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    exprs, ids = [], []

    def walk(panels):
        for p in panels:
            ids.append(p["id"])
            if p["type"] != "row":
                assert p["targets"], p["title"]
            for t in p.get("targets", []):
                exprs.append(t["expr"])
            walk(p.get("panels", []))
    walk(dash["panels"])
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            exprs.append(v["definition"])
    return exprs


def adapter_rules():
    values = yaml.safe_load(ADAPTER_VALUES.read_text())
    return values["rules"]["custom"] + values["rules"]["external"]


def adapter_exprs():
    exprs = []
    for r in adapter_rules():
        exprs += [r["seriesQuery"], r["metricsQuery"].replace("<<.LabelMatchers>>", "").replace("<<.GroupBy>>", "pod")]
        assert r["resources"]["overrides"]["namespace"] == {"resource": "namespace"}, r
    return exprs


def served_metric_names():
    """The names prometheus-adapter serves to the HPAs."""
    return {r["name"]["as"] for r in adapter_rules()}


def hpa_metric_names():
    names = []
    for overlay in OVERLAYS:
        for h in objects(f"overlays/{overlay}", "HorizontalPodAutoscaler"):
            for m in h["spec"]["metrics"]:
                if m["type"] in ("Pods", "External", "Object"):
                    names.append(m[m["type"].lower()]["metric"]["name"])
    return names


def keda_exprs():
    return [t["metadata"]["query"] for o in OVERLAYS for s in objects(f"overlays/{o}", "ScaledObject")
            for t in s["spec"]["triggers"] if t["type"] == "prometheus"]


def test_static_metric_references():
    """Each HPA's custom/external metric is one prometheus-adapter serves; every expression
    names Tributary metrics (the live test checks they exist)."""
    served = served_metric_names()
    for name in hpa_metric_names():
        assert name in served, f"HPA metric {name} is not served by prometheus-adapter's rules"
    for e in dashboard_exprs() + adapter_exprs() + keda_exprs():
        assert METRIC.search(e), e


def live_metrics(url):
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    labels, values = {}, {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels.setdefault(s.name, set()).update(s.labels)
            for k, v in s.labels.items():
                values.setdefault((s.name, k), set()).add(v)
    return labels, values


def missing_references(exprs, labels, values):
    """What the expressions name that the live metrics lack: metric names, the labels they
    group by or match on, and the values they match exactly."""
    missing = []
    for e in exprs:
        names = set(METRIC.findall(e))
        for n in names - labels.keys():
            missing.append(f"metric {n} (in {e})")
        known = set().union(*(labels.get(n, set()) for n in names)) | TARGET_LABELS
        for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", e):
            for label in filter(None, (x.strip() for x in group.split(","))):
                if label not in known:
                    missing.append(f"label {label} (in {e})")
        for body in re.findall(r"\{([^}]*)\}", e):
            for label, op, value in re.findall(r"(\w+)\s*(=~|!~|!=|=)\s*\"([^\"]*)\"", body):
                if label in TARGET_LABELS:
                    continue
                if label not in known:
                    missing.append(f"label {label} (in {e})")
                elif op == "=" and not any(value in values.get((n, label), set()) for n in names):
                    missing.append(f"value {label}={value!r} (in {e})")
    return missing


def secret(name):
    return one("base", "Secret", name)["stringData"]


@pytest.fixture(scope="module")
def k8s_cluster(request, tmp_path_factory):
    """A real cluster on the ConfigMap's catalogs (k8s/base/etc) with the Secret's variables,
    the Secret's password file and the manifest's recovery flags: it starting at all shows the
    catalog files are ones Tributary accepts."""
    args = container(one("base", "Deployment", SCHEDULER))["args"]
    recovery = [a for f in ("--executor-timeout-seconds", "--retry-policy") for a in (f, flag_value(args, f))]
    users = tmp_path_factory.mktemp("auth") / "password.db"
    users.write_text(secret("tributary-auth")["password.db"])
    c = Cluster(K8S / "base/etc", env=secret("tributary-secrets"), password_file=users, scheduler_args=recovery)
    c.user, c.password = users.read_text().split()[0].split(":", 1)
    try:
        c.wait_ready(c.user, c.password)
        yield c
    finally:
        if request.session.testsfailed:
            print(c.logs())
        c.stop()


def test_metric_names_exist_live(k8s_cluster):
    conn = connect(k8s_cluster.uri, k8s_cluster.user, k8s_cluster.password)
    try:
        rows = query(conn, "SELECT l_returnflag, count(*) FROM tpch.tiny.lineitem GROUP BY l_returnflag")
        assert len(rows) == 3
    finally:
        conn.close()
    exprs = dashboard_exprs() + adapter_exprs() + keda_exprs() + [
        n for n in hpa_metric_names() if n not in served_metric_names()]
    # Counters with labels and histograms appear once a task or query has ended and been
    # reported; poll briefly.
    deadline = time.time() + 30
    while True:
        labels, values = {}, {}
        for url in [k8s_cluster.http, *k8s_cluster.executor_http]:
            lab, val = live_metrics(url)
            for k, v in lab.items():
                labels.setdefault(k, set()).update(v)
            for k, v in val.items():
                values.setdefault(k, set()).update(v)
        missing = missing_references(exprs, labels, values)
        if not missing or time.time() > deadline:
            break
        time.sleep(0.5)
    assert not missing, "\n".join(missing)


def test_manifest_flags_exist_in_the_binary():
    """Every flag the manifests pass (and the preStop drain's, and the image's default
    command's) is one the binary knows."""
    def help_text(*args):
        out = subprocess.run([BIN, *args, "--help"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"tributary {' '.join(args)} --help: {out.stderr}"
        return out.stdout
    for name, role in ((SCHEDULER, "scheduler"), (EXECUTOR, "executor")):
        c = container(one("base", "Deployment", name))
        assert c["args"][0] == role
        text = help_text(role)
        for flag in flags(c["args"]):
            assert re.search(rf"(^|\s){re.escape(flag)}\b", text, re.M), f"tributary {role} has no {flag}"
    cmd = [json.loads(a) for i, a in dockerfile_stages()[-1][1] if i == "CMD"][-1]
    text = help_text(cmd[0])
    for flag in flags(cmd):
        assert re.search(rf"(^|\s){re.escape(flag)}\b", text, re.M), f"tributary {cmd[0]} has no {flag} (Dockerfile CMD)"
    drain = container(one("base", "Deployment", EXECUTOR))["lifecycle"]["preStop"]["exec"]["command"]
    assert drain[0] == "tributary"
    text = help_text(*[a for a in drain[1:] if not a.startswith("--")])
    for flag in flags(drain) + ["--cancel"]:
        assert re.search(rf"(^|\s){re.escape(flag)}\b", text, re.M), f"tributary executor drain has no {flag}"
