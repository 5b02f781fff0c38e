"""Structure of the deployment files (no container engine or cluster here to run them).

They must agree with the product: the port and probe paths the worker serves, the settings
it reads, the consumer group and topics KEDA watches, the rules Prometheus loads, the
files the images copy and the stack mounts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.lag import input_topics
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kind(kind_name: str, name: str | None = None) -> dict[str, Any]:
    found = [d for p in sorted(K8S.glob("*.yaml")) for d in docs(p)
             if d.get("kind") == kind_name and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind_name} {name or ''}, found {len(found)}"
    return found[0]


def configmap() -> dict[str, str]:
    return kind("ConfigMap")["data"]


def test_every_manifest_is_a_named_kubernetes_object_and_kustomization_lists_them() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    for path in K8S.glob("*.yaml"):
        if path.name == "kustomization.yaml":
            continue
        for d in docs(path):
            assert d["apiVersion"] and d["kind"] and d["metadata"]["name"], path
            assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "streamrec", path
        # The example Secret is never applied over the real one.
        assert (path.name in listed) == (path.name != "secret.example.yaml"), path.name
    assert all((K8S / r).is_file() for r in listed)


def test_configmap_holds_only_known_settings_and_no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    data = configmap()
    fields = {f"STREAMREC_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= fields, set(data) - fields
    assert not {"STREAMREC_KAFKA_SASL_PASSWORD", "STREAMREC_REDIS_URL"} & set(data)
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("STREAMREC_KAFKA_SASL_PASSWORD", "x")  # from the Secret
    monkeypatch.setenv("STREAMREC_REDIS_URL", "rediss://:x@redis:6380/0")
    s = Settings()  # the worker accepts them, read as it reads them
    assert s.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"] and s.partitions == 24
    secret = docs(K8S / "secret.example.yaml")[0]
    assert set(secret["stringData"]) <= fields


def test_deployment_probes_ports_resources_and_settings() -> None:
    dep = kind("Deployment", "streamrec-worker")
    spec = dep["spec"]
    pod = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    port = int(configmap()["STREAMREC_WEB_PORT"])
    assert {"name": "http", "containerPort": port, "protocol": "TCP"} in container["ports"]
    assert configmap()["STREAMREC_WEB_HOST"] == "0.0.0.0"  # probes and Prometheus reach the pod's address
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # model load + table recovery
    res = container["resources"]
    assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == "1"
    assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"]
    assert {"configMapRef": {"name": "streamrec-config"}} in container["envFrom"]
    assert {"secretRef": {"name": "streamrec-secrets"}} in container["envFrom"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 30
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"
    # Writable paths exist as volumes when the root filesystem is read-only.
    if container["securityContext"].get("readOnlyRootFilesystem"):
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        data_dir = next(e["value"] for e in container["env"] if e["name"] == "STREAMREC_DATA_DIR")
        assert {data_dir, "/tmp"} <= mounts


def test_serving_replicas_run_serve_behind_a_service_and_scale_on_cpu() -> None:
    dep = kind("Deployment", "streamrec-serving")
    pod = dep["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == ["serve"]
    port = int(configmap()["STREAMREC_WEB_PORT"])
    assert {"name": "http", "containerPort": port, "protocol": "TCP"} in container["ports"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert "nvidia.com/gpu" not in container["resources"]["requests"]
    # Guaranteed QoS with whole CPUs, so the static CPU manager can give the replica cores of its own.
    res = container["resources"]
    assert res["requests"] == res["limits"] and float(res["requests"]["cpu"]).is_integer()
    assert {"configMapRef": {"name": "streamrec-config"}} in container["envFrom"]
    svc = kind("Service", "streamrec-serving")
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    hpa = kind("HorizontalPodAutoscaler", "streamrec-serving")
    assert hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    # The workers' KEDA scaler and disruption budget leave the replicas alone.
    workers = kind("Deployment", "streamrec-worker")["spec"]["selector"]["matchLabels"]
    assert not workers.items() <= pod["metadata"]["labels"].items()


def test_keda_scales_on_the_workers_group_and_topics_up_to_the_partition_count() -> None:
    so = kind("ScaledObject")
    cm = configmap()
    dep = kind("Deployment", "streamrec-worker")
    assert so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert so["spec"]["maxReplicaCount"] <= int(cm["STREAMREC_PARTITIONS"])
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
    triggers = so["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"kafka"}
    assert {t["metadata"]["topic"] for t in triggers} == {cm["STREAMREC_TOPIC_CLICKS"], cm["STREAMREC_TOPIC_SEARCHES"]}
    for t in triggers:
        meta = t["metadata"]
        assert meta["consumerGroup"] == cm["STREAMREC_APP_ID"]
        assert meta["bootstrapServers"] == cm["STREAMREC_KAFKA_BOOTSTRAP_SERVERS"]
        assert int(meta["lagThreshold"]) > 0 and meta["allowIdleConsumers"] == "false"
        assert t["authenticationRef"]["name"] == kind("TriggerAuthentication")["metadata"]["name"]
    auth = {r["parameter"] for r in kind("TriggerAuthentication")["spec"]["secretTargetRef"]}
    assert {"sasl", "username", "password", "tls"} <= auth  # the ConfigMap says SASL_SSL
    assert cm["STREAMREC_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"


def test_prometheusrule_equals_the_rules_file_and_servicemonitor_sets_the_job() -> None:
    rule = kind("PrometheusRule")
    rules_file = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "streamrec.rules.yml").read_text())
    assert rule["spec"]["groups"] == rules_file["groups"]
    sm = kind("ServiceMonitor")
    svc = kind("Service", "streamrec-worker")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "streamrec"  # rules use up{job="streamrec"}
    assert sm["spec"]["endpoints"][0] == {"port": "http", "path": "/metrics", "interval": "15s"}
    assert kind("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfiles_build_a_worker_image(name: str) -> None:
    text = (DEPLOY / name).read_text()
    lines = [ln.strip() for ln in text.splitlines()]
    base = next(ln.split()[1] for ln in lines if ln.startswith("FROM "))
    if name == "Dockerfile":
        assert re.fullmatch(r"nvidia/cuda:13\.\d+\.\d+-cudnn-runtime-ubuntu\d\d\.\d\d", base), base
        assert "'.[gpu]'" in text and "pip uninstall -y onnxruntime" in text
        assert "CUDAExecutionProvider' in ort.get_available_providers()" in text
    else:
        assert base.startswith("python:3.11")
        assert "CUDAExecutionProvider" not in text
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text
    for ln in lines:
        if ln.startswith("COPY "):
            for src in ln.split()[1:-1]:
                assert (ROOT / src).exists(), f"{name} copies {src}, which is not in the repository"
    assert "USER 10001" in lines and "EXPOSE 6066" in lines
    assert 'ENTRYPOINT ["streamrec"]' in lines and 'CMD ["worker"]' in lines
    assert "http://127.0.0.1:6066/health" in text  # HEALTHCHECK
    assert "STREAMREC_WEB_HOST=0.0.0.0" in text
    assert "ensure_encoders(Path(" in text  # ONNX exports baked in at build time


def test_compose_stack_runs_kafka_kraft_redis_two_workers_prometheus_and_grafana() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "redis", "topics", "worker-1", "worker-2", "prometheus", "grafana"} <= set(services)
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and "ZOOKEEPER" not in " ".join(kafka)
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert services["topics"]["command"] == ["topics", "create"]
    host_ports = []
    for name in ("worker-1", "worker-2"):
        w = services[name]
        env = w["environment"]
        assert env["STREAMREC_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092" and env["STREAMREC_APP_ID"] == "streamrec"
        assert w["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        assert "/ready" in " ".join(w["healthcheck"]["test"])
        assert ((DEPLOY / w["build"]["context"]).resolve() / w["build"]["dockerfile"]).is_file()  # context: ..
        (mapping,) = w["ports"]
        host_ports.append(mapping.rsplit(":", 1)[0])
        assert mapping.endswith(":" + env["STREAMREC_WEB_PORT"])
    assert len(set(host_ports)) == 2
    prom_cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = prom_cfg["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == ["worker-1:6066", "worker-2:6066"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            src = volume.split(":")[0]
            assert (DEPLOY / src).exists(), f"{name} mounts {src}, which does not exist"
    rules_mount = next(v for v in services["prometheus"]["volumes"] if "rules" in v)
    assert prom_cfg["rule_files"] == [rules_mount.split(":")[1] + "/*.yml"]
    gpu = yaml.safe_load((DEPLOY / "compose.gpu.yaml").read_text())["services"]
    for name in ("worker-1", "worker-2"):
        assert gpu[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert gpu[name]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_lag_topics_are_the_ones_keda_and_the_configmap_name() -> None:
    cm = configmap()
    s = Settings(**{k.removeprefix("STREAMREC_").lower(): v for k, v in cm.items() if k.startswith("STREAMREC_TOPIC")})
    assert set(input_topics(s)) == {cm["STREAMREC_TOPIC_CLICKS"], cm["STREAMREC_TOPIC_SEARCHES"],
                                    cm["STREAMREC_TOPIC_CATALOG"]}
