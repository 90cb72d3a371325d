"""The deployment files, checked without a cluster, a Docker engine or the network.

- every YAML file under deploy/ and docker-compose.yml parses (multi-document);
- Kubernetes: the core manifests validate against the Kubernetes API's JSON schemas (kubernetes-validate,
  bundled schemas, strict: unknown fields are errors); the Deployment probes /healthz and /readyz on the
  observability port, runs as non-root with a read-only root, waits longer than shutdown.timeout_s; the
  ConfigMap's forwarder.yaml passes the real config schema; KEDA's maxReplicaCount equals the documented
  partition count; the kustomization lists every manifest but the example Secret;
- compose: three forwarder replicas, host ports on 127.0.0.1 only, a config that passes the schema;
- Grafana and the alert rules use only metric names that forwarder.metrics defines;
- the Dockerfile: non-root USER, HEALTHCHECK, pinned by constraints.txt.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from forwarder.config import Config, parse_config
from forwarder.metrics import Metrics
from tests.harness import REPO

K8S = REPO / "deploy" / "kubernetes"
COMPOSE = REPO / "docker-compose.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "forwarder-dashboard.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yaml"
DOCKERFILE = REPO / "Dockerfile"
KUBERNETES_VERSION = "1.37"
EXAMPLE_SECRET = "secret.example.yaml"
NO_ENV: dict[str, str] = {}  # the config checks must not see this machine's FORWARDER__* variables


# ---- loading ----------------------------------------------------------------------------------------------


def _yaml_files() -> list[Path]:
    files = sorted(p for pattern in ("*.yaml", "*.yml") for p in (REPO / "deploy").rglob(pattern))
    return [*files, COMPOSE]


def _load_all(path: Path) -> list[Any]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _load_one(path: Path) -> Any:
    docs = _load_all(path)
    assert len(docs) == 1, f"{path.name}: expected one YAML document, found {len(docs)}"
    return docs[0]


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@cache
def _manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """Every Kubernetes object under deploy/kubernetes, by (kind, name)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in _manifest_files():
        for doc in _load_all(path):
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in out, f"{key} defined twice"
            out[key] = doc
    return out


def _object(kind: str, name: str) -> dict[str, Any]:
    return _manifests()[(kind, name)]


def _deployment() -> dict[str, Any]:
    return _object("Deployment", "forwarder")


def _pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = _deployment()["spec"]["template"]["spec"]
    return spec


def _container() -> dict[str, Any]:
    containers = _pod_spec()["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _configmap_data() -> Any:
    return yaml.safe_load(_object("ConfigMap", "forwarder-config")["data"]["forwarder.yaml"])


def _configmap_config() -> Config:
    return parse_config(_configmap_data(), environ=NO_ENV)


def _compose() -> dict[str, Any]:
    """docker-compose.yml as Docker reads it with none of its variables set (their defaults)."""
    text = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", COMPOSE.read_text(encoding="utf-8"))
    assert "${" not in text, "every variable in docker-compose.yml has a default"
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _compose_config() -> Config:
    return parse_config(_load_one(REPO / "deploy" / "compose" / "forwarder.yaml"), environ=NO_ENV)


def _seconds(value: str | int | float) -> float:
    """A compose duration (`40s`, `1m30s`) or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    assert parts, f"not a duration: {value!r}"
    assert "".join(n + u for n, u in parts) == value, f"not a duration: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


# ---- every YAML file --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_parses(path: Path) -> None:
    docs = _load_all(path)
    assert docs, f"{path.name}: no document"
    for doc in docs:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"


def test_no_machine_paths_in_deploy_files() -> None:
    files = [*_yaml_files(), DASHBOARD, DOCKERFILE, REPO / "docs" / "operations.md", K8S / "README.md"]
    for path in files:
        text = path.read_text(encoding="utf-8")
        # The folder this checkout sits in stands for this machine's own paths.
        for prefix in (f"{REPO.resolve().parent}/", "/home/", "/root/", "/tmp/"):
            assert prefix not in text, f"{path.name} holds a path of a machine ({prefix})"


# ---- Kubernetes -------------------------------------------------------------------------------------------


def _core_objects() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in _manifest_files():
        for doc in _load_all(path):
            if not doc["apiVersion"].startswith("keda.sh/"):
                out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


@pytest.mark.parametrize(("where", "doc"), _core_objects(), ids=[w for w, _ in _core_objects()])
def test_core_manifest_matches_the_kubernetes_schema(where: str, doc: dict[str, Any]) -> None:
    # Schemas bundled with kubernetes-validate: no cluster, no network. Strict: unknown fields are errors.
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        pytest.fail(f"{where}: {path}: {exc.message}")


def test_schema_validation_catches_a_typo() -> None:
    doc = json.loads(json.dumps(_deployment()))
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def _container_port(port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in _container()["ports"]}
    assert port in named, f"probe port {port!r} is not a named container port"
    value: int = named[port]
    return value


def test_probes_use_healthz_and_readyz_on_the_observability_port() -> None:
    port = _configmap_config().observability.port
    assert port is not None, "observability.port must be set: the probes need it"
    container = _container()
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert _container_port(get["port"]) == port, probe
    annotations = _deployment()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    service = _object("Service", "forwarder-metrics")
    assert _container_port(service["spec"]["ports"][0]["targetPort"]) == port


def test_container_runs_as_non_root_with_a_read_only_root() -> None:
    pod = _pod_spec()["securityContext"]
    container = _container()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert container["runAsNonRoot"] is True
    assert container.get("runAsUser", pod["runAsUser"]) != 0
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert pod["runAsUser"] == _dockerfile_uid(), "runAsUser should be the image's USER"


def test_resources_are_set() -> None:
    resources = _container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def test_grace_period_outlasts_the_shutdown_timeout() -> None:
    timeout = _configmap_config().shutdown.timeout_s
    grace = _pod_spec()["terminationGracePeriodSeconds"]
    # The stop also closes the consumer (its revoke is bounded to 2 s) and the producer: leave a margin.
    assert grace > timeout + 5, f"terminationGracePeriodSeconds {grace} vs shutdown.timeout_s {timeout}"


def test_configmap_config_passes_the_schema() -> None:
    cfg = _configmap_config()
    assert cfg.logging.format == "json"
    assert cfg.logging.include_payloads is False
    assert cfg.personalize.endpoint_url is None, "production talks to AWS, not the emulator"
    assert "sasl.password" not in cfg.kafka.client, "secrets come from the Secret, not the ConfigMap"


def test_configmap_config_with_the_secret_environment() -> None:
    secret = _object("Secret", "forwarder-kafka")["stringData"]
    cfg = parse_config(_configmap_data(), environ=secret)
    assert cfg.kafka.client["sasl.password"] == secret["FORWARDER__KAFKA__CLIENT__SASL_PASSWORD"]
    assert cfg.kafka.client["sasl.username"] == secret["FORWARDER__KAFKA__CLIENT__SASL_USERNAME"]


def test_config_is_mounted_where_the_command_reads_it() -> None:
    container = _container()
    args = container["args"]
    config_path = args[args.index("--config") + 1]
    assert args[0] == "run"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in _pod_spec()["volumes"]}
    mount = next(m for m in mounts.values() if config_path.startswith(m["mountPath"] + "/"))
    assert mount["readOnly"] is True
    source = volumes[mount["name"]]["configMap"]
    assert source["name"] == "forwarder-config"
    keys = {item["path"]: item["key"] for item in source["items"]}
    assert keys[config_path.removeprefix(mount["mountPath"] + "/")] == "forwarder.yaml"
    assert any(m["mountPath"] == "/tmp" for m in mounts.values()), "a writable /tmp with a read-only root"
    assert config_path == _dockerfile_cmd()[_dockerfile_cmd().index("--config") + 1]


def test_secret_and_service_account_are_wired() -> None:
    pod = _pod_spec()
    env_from = [e["secretRef"]["name"] for e in _container()["envFrom"]]
    assert env_from == ["forwarder-kafka"]
    secret = _object("Secret", "forwarder-kafka")
    assert set(secret["stringData"]) == {
        "FORWARDER__KAFKA__CLIENT__SASL_USERNAME",
        "FORWARDER__KAFKA__CLIENT__SASL_PASSWORD",
    }
    account = _object("ServiceAccount", pod["serviceAccountName"])
    arn = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert re.fullmatch(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", arn), arn
    text = (K8S / EXAMPLE_SECRET).read_text(encoding="utf-8")
    assert "IRSA" in text
    assert "AWS credentials" in text


def test_rollout_never_adds_a_member_beyond_the_replicas() -> None:
    rolling = _deployment()["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxSurge"] == 0
    assert rolling["maxUnavailable"] == 1
    assert "replicas" not in _deployment()["spec"], "KEDA owns the replica count"


def test_pdb_selects_the_pods() -> None:
    pdb = _object("PodDisruptionBudget", "forwarder")
    assert pdb["spec"]["maxUnavailable"] == 1
    labels = _deployment()["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _deployment()["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_keda_scales_on_lag_up_to_the_partition_count() -> None:
    scaled = _object("ScaledObject", "forwarder")
    partitions = int(scaled["metadata"]["annotations"]["forwarder/topic-partitions"])
    spec = scaled["spec"]
    assert spec["maxReplicaCount"] == partitions
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    assert spec["scaleTargetRef"]["name"] == _deployment()["metadata"]["name"]
    readme = (K8S / "README.md").read_text(encoding="utf-8")
    assert f"**{partitions} partitions**" in readme, "README.md documents the partition count"
    configmap_text = _object("ConfigMap", "forwarder-config")["data"]["forwarder.yaml"]
    assert f"{partitions} partitions" in configmap_text
    cfg = _configmap_config()
    [trigger] = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["consumerGroup"] == cfg.kafka.group_id
    assert meta["topic"] in cfg.kafka.topics
    assert meta["bootstrapServers"] == cfg.kafka.bootstrap_servers
    assert meta["allowIdleConsumers"] == "false"
    assert int(meta["lagThreshold"]) > 0
    auth = _object("TriggerAuthentication", trigger["authenticationRef"]["name"])
    secret = _object("Secret", "forwarder-kafka")["stringData"]
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == "forwarder-kafka"
        assert ref["key"] in secret


def test_kustomization_lists_every_manifest() -> None:
    kustomization = _load_one(K8S / "kustomization.yaml")
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    for name in listed:
        assert (K8S / name).is_file(), f"kustomization lists a missing file {name}"
    expected = {p.name for p in _manifest_files()} - {EXAMPLE_SECRET}
    assert set(listed) == expected
    # Applying the example would overwrite the real secret with a placeholder.
    assert EXAMPLE_SECRET not in listed
    images = {i["name"] for i in kustomization.get("images", [])}
    assert _container()["image"].rsplit(":", 1)[0] in images


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomization_renders() -> None:
    # `kubectl kustomize` renders locally: no cluster, no network.
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert {(d["kind"], d["metadata"]["name"]) for d in rendered} == set(_manifests()) - {
        ("Secret", "forwarder-kafka")
    }
    namespace = _load_one(K8S / "kustomization.yaml")["namespace"]
    for doc in rendered:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace, doc["kind"]


# ---- docker compose ---------------------------------------------------------------------------------------


def test_compose_runs_three_forwarder_replicas() -> None:
    services = _compose()["services"]
    assert {"kafka", "topics", "emulator", "forwarder", "prometheus"} <= set(services)
    forwarder = services["forwarder"]
    assert forwarder["deploy"]["replicas"] == 3
    assert "container_name" not in forwarder
    assert "ports" not in forwarder
    conditions = {name: dep["condition"] for name, dep in forwarder["depends_on"].items()}
    assert conditions == {
        "kafka": "service_healthy",
        "topics": "service_completed_successfully",
        "emulator": "service_healthy",
    }
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert "healthcheck" in services["kafka"]
    assert services["topics"]["healthcheck"] == {"disable": True}


def _host_bindings(service: dict[str, Any]) -> list[str]:
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append(str(port.get("host_ip", "")))
        else:
            text = str(port)
            # HOST_IP:HOST_PORT:CONTAINER_PORT; anything shorter binds every interface.
            out.append(text.rsplit(":", 2)[0] if text.count(":") >= 2 else "")
    return out


def test_compose_binds_host_ports_to_loopback_only() -> None:
    bound = 0
    for name, service in _compose()["services"].items():
        for host_ip in _host_bindings(service):
            assert host_ip == "127.0.0.1", f"{name}: port bound to {host_ip or 'every interface'}"
            bound += 1
    assert bound >= 3


def test_compose_forwarder_config_passes_the_schema() -> None:
    services = _compose()["services"]
    forwarder = services["forwarder"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in forwarder["volumes"]}
    assert mounts["/etc/forwarder/forwarder.yaml"] == "./deploy/compose/forwarder.yaml"
    cfg = _compose_config()
    assert cfg.kafka.bootstrap_servers == "kafka:9092"
    assert cfg.personalize.endpoint_url == "http://emulator:8080"
    assert _seconds(forwarder["stop_grace_period"]) > cfg.shutdown.timeout_s + 5
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(forwarder["environment"])
    # The one-shot topics service and the emulator agree with the config.
    sample = services["topics"]["command"]
    assert sample[0] == "sample"
    assert sample[sample.index("--topic") + 1] in cfg.kafka.topics
    assert sample[sample.index("--dead-letter-topic") + 1] == cfg.dead_letter.topic
    assert int(sample[sample.index("--partitions") + 1]) >= forwarder["deploy"]["replicas"]
    emulator = services["emulator"]["command"]
    assert emulator[0] == "emulator"
    assert emulator[emulator.index("--tracking-id") + 1] == cfg.personalize.tracking_id
    assert emulator[emulator.index("--record") + 1].startswith("/data/")


def test_compose_bind_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"


def test_prometheus_discovers_every_replica() -> None:
    prometheus = _load_one(REPO / "deploy" / "compose" / "prometheus.yml")
    [job] = [j for j in prometheus["scrape_configs"] if j["job_name"] == "forwarder"]
    [sd] = job["dns_sd_configs"]
    assert "forwarder" in sd["names"] or "tasks.forwarder" in sd["names"]
    assert sd["type"] == "A"
    assert sd["port"] == _compose_config().observability.port
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yaml"]


# ---- metric names -----------------------------------------------------------------------------------------


@cache
def _exposed_metric_names() -> frozenset[str]:
    """Every series name a replica can expose, from the registry itself (with prometheus_client's suffixes)."""
    names: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names |= {f"{family.name}_total", f"{family.name}_created"}
        elif family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count", "created")}
        elif family.type == "gauge":
            names.add(family.name)
        else:  # pragma: no cover - a new kind of metric needs a rule here
            raise AssertionError(f"unexpected metric type {family.type} of {family.name}")
    return frozenset(names)


_PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
)
_PROMQL_NUMBERS = frozenset({"inf", "nan"})


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, ranges, functions, clauses removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # grouping labels
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word in _PROMQL_KEYWORDS or word.lower() in _PROMQL_NUMBERS:
            continue
        names.add(word)
    return names


def test_promql_metric_names_extracts_only_metrics() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{instance=~"$instance", x="y z"}[$__rate_interval])))'
        " / on (job) group_left sum without (le) (b_total offset 5m) > bool 1e3"
        " and deriv(c[15m:1m]) > 0 unless absent(d)"
    )
    assert promql_metric_names(expr) == {"a_bucket", "b_total", "c", "d"}


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            text = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", text)
            assert match, f"variable {variable['name']}: unexpected query {text!r}"
            exprs.append(match.group(1))
    return exprs


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for group in _load_one(ALERTS)["groups"] for rule in group["rules"]]


def test_dashboard_uses_only_defined_metrics() -> None:
    exposed = _exposed_metric_names()
    used: set[str] = set()
    for expr in _dashboard_expressions():
        names = promql_metric_names(expr)
        assert names, f"no metric in {expr!r}"
        assert names <= exposed, f"undefined metric(s) {sorted(names - exposed)} in {expr!r}"
        used |= names
    wanted = {
        "forwarder_events_sent_total",
        "forwarder_putevents_calls_total",
        "forwarder_events_dead_lettered_total",
        "forwarder_batch_events_sum",
        "forwarder_batch_events_count",
        "forwarder_putevents_call_seconds_bucket",
        "forwarder_in_flight_events",
        "forwarder_buffered_events",
        "forwarder_paused_partitions",
        "forwarder_consumer_lag",
        "forwarder_committed_offset",
        "forwarder_outage",
        "forwarder_rebalances_total",
        "forwarder_route_records_sent_total",  # a panel per operation (routes)
        "forwarder_route_calls_total",
    }
    assert wanted <= used, f"dashboard misses {sorted(wanted - used)}"


def test_dashboard_panels_are_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]


def test_alert_rules_use_only_defined_metrics() -> None:
    exposed = _exposed_metric_names()
    rules = _alert_rules()
    for rule in rules:
        names = promql_metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric"
        assert names <= exposed, f"{rule['alert']}: undefined metric(s) {sorted(names - exposed)}"
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
    by_name = {rule["alert"]: rule for rule in rules}
    assert len(by_name) == len(rules), "alert names are unique"
    outage = by_name["ForwarderPutEventsOutage"]
    assert "forwarder_outage" in outage["expr"]
    assert _seconds(outage["for"]) >= 300
    for alert in (
        "ForwarderDeadLetterGrowing",
        "ForwarderConsumerLagGrowing",
        "ForwarderReplicaNotReady",
        "ForwarderRetriesExhausted",
        "ForwarderNoEventsSentWhileLagging",
    ):
        assert alert in by_name


def test_operations_doc_lists_every_metric_and_alert() -> None:
    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    for family in Metrics().registry.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        assert f"`{name}`" in text, f"docs/operations.md does not describe {name}"
    for rule in _alert_rules():
        assert f"`{rule['alert']}`" in text, f"docs/operations.md does not describe {rule['alert']}"


# ---- Dockerfile -------------------------------------------------------------------------------------------


@cache
def _dockerfile_instructions() -> tuple[tuple[str, str], ...]:
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    joined: list[str] = []
    current = ""
    for line in lines:
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined.append(current + stripped)
        current = ""
    out = []
    for line in joined:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return tuple(out)


def _dockerfile(keyword: str) -> list[str]:
    return [rest for k, rest in _dockerfile_instructions() if k == keyword]


def _dockerfile_uid() -> int:
    user = _dockerfile("USER")[-1].split(":")[0]
    assert user.isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot verify it"
    return int(user)


def _dockerfile_cmd() -> list[str]:
    cmd: list[str] = json.loads(_dockerfile("CMD")[-1])
    return cmd


def test_dockerfile_runs_as_non_root() -> None:
    assert _dockerfile("USER"), "no USER"
    assert _dockerfile("USER")[-1].split(":")[0] not in {"root", "0"}
    assert _dockerfile_uid() != 0


def test_dockerfile_healthcheck_entrypoint_and_pins() -> None:
    [healthcheck] = _dockerfile("HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert "python" in healthcheck
    assert "curl" not in healthcheck
    assert [a for a in _dockerfile("ARG") if a.startswith("PYTHON_IMAGE=")] == [
        "PYTHON_IMAGE=python:3.11-slim"
    ]
    assert all(f.startswith("${PYTHON_IMAGE}") for f in _dockerfile("FROM"))
    assert any("constraints.txt" in c for c in _dockerfile("COPY"))
    installs = [r for r in _dockerfile("RUN") if "pip install" in r]
    assert installs
    assert all("-c constraints.txt" in r for r in installs)
    assert json.loads(_dockerfile("ENTRYPOINT")[-1]) == ["forwarder"]
    assert _dockerfile_cmd() == ["run", "--config", "/etc/forwarder/forwarder.yaml"]
    assert "9102" in _dockerfile("EXPOSE")[-1].split()
    env = " ".join(_dockerfile("ENV"))
    assert "PYTHONUNBUFFERED=1" in shlex.split(env)


def test_dockerignore_keeps_the_context_small() -> None:
    entries = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".local", ".git"} <= entries
    assert "forwarder" not in entries
    assert "constraints.txt" not in entries
