"""The Kubernetes manifests (issue 14), checked offline: each resource against the
Kubernetes OpenAPI schemas that `kubernetes-validate` bundles (strict: an unknown field
is an error), the kustomize base and overlays rendered with `kubectl kustomize` (or
`kustomize build`) where one is installed, and what the files promise: probes on /healthz
and /readyz, the security context, a ConfigMap whose profile is valid and binds the
container's port, a token that fails closed. They cannot be applied here (no cluster)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from faultserver._profile.load import load_profile_text

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy/kubernetes"
BASE = KUBE / "base"
#: The oldest Kubernetes the manifests are meant for, and the newest the package knows.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
#: Custom resources: no schema in the Kubernetes release, checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _resource_files() -> list[Path]:
    return sorted(p for p in KUBE.rglob("*.yaml") if p.name != "kustomization.yaml")


def _base() -> dict[str, dict[str, Any]]:
    """The base's resources by kind (one of each, but two Services: by name)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(BASE.glob("*.yaml")):
        for doc in _documents(path):
            if doc["kind"] != "Kustomization":
                key = doc["kind"] if doc["kind"] != "Service" else f"Service/{doc['metadata']['name']}"
                out[key] = doc
    return out


@pytest.mark.parametrize("path", _resource_files(), ids=lambda p: str(p.relative_to(KUBE)))
@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(path, version):
    for doc in _documents(path):
        if doc["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_catches_a_misspelled_field():
    """The check above is not vacuous: strict validation refuses an unknown field."""
    deployment = _base()["Deployment"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/readyz"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def test_the_kustomizations_list_files_that_exist():
    for kustomization in KUBE.rglob("kustomization.yaml"):
        doc = yaml.safe_load(kustomization.read_text())
        for resource in doc.get("resources", []):
            assert (kustomization.parent / resource).exists(), (kustomization, resource)


def test_deployment_probes_resources_and_security_context():
    deployment = _base()["Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    [container] = spec["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8080, "control": 8474}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "control"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "control"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"requests", "limits"} <= set(container["resources"])
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 10001  # the image's USER
    # writable /tmp only (generated CAs), the profile read-only from the ConfigMap, whole volume
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {"/etc/faultserver", "/tmp"}
    assert mounts["/etc/faultserver"]["readOnly"] is True and "subPath" not in mounts["/etc/faultserver"]
    assert deployment["spec"]["replicas"] >= 2
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["control"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_deployment_environment_configures_run():
    [container] = _base()["Deployment"]["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["FAULTSERVER_CONTROL"]["value"] == "0.0.0.0:8474"
    assert env["FAULTSERVER_WATCH"]["value"] == "true"
    assert env["FAULTSERVER_LOG_FORMAT"]["value"] == "json"
    assert env["FAULTSERVER_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "faultserver-token",
        "key": "token",
    }
    fleet = _base()["Service/faultserver-fleet"]
    assert env["FAULTSERVER_TARGET"]["value"] == f"dns:{fleet['metadata']['name']}:8474"
    assert container["args"] == ["run", "/etc/faultserver/profile.yaml"]


def test_configmap_profile_is_valid_and_binds_the_container_port():
    base = _base()
    text = base["ConfigMap"]["data"]["profile.yaml"]
    profile = load_profile_text(text, source="configmap")
    [container] = base["Deployment"]["spec"]["template"]["spec"]["containers"]
    ports = {port["containerPort"] for port in container["ports"]}
    for listener in profile.listeners:
        assert listener.host == "0.0.0.0" and listener.port in ports
    volume = next(v for v in base["Deployment"]["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == base["ConfigMap"]["metadata"]["name"]


def test_services_and_budget_select_the_pods():
    base = _base()
    labels = base["Deployment"]["spec"]["template"]["metadata"]["labels"]
    data = base["Service/faultserver"]
    fleet = base["Service/faultserver-fleet"]
    assert fleet["spec"]["clusterIP"] == "None"  # headless: one DNS record per ready pod
    assert fleet["spec"]["publishNotReadyAddresses"] is False
    assert [p["targetPort"] for p in fleet["spec"]["ports"]] == ["control"]
    assert [p["targetPort"] for p in data["spec"]["ports"]] == ["http"]
    for selector in (
        data["spec"]["selector"],
        fleet["spec"]["selector"],
        base["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()


def test_the_base_token_is_empty_so_a_pod_without_one_does_not_start(tmp_path):
    """The Secret's token is empty; faultserver then refuses 0.0.0.0 for its admin API."""
    from tests.support.cli import run_cli

    assert _base()["Secret"]["stringData"] == {"token": ""}
    profile = tmp_path / "p.yaml"
    profile.write_text(_base()["ConfigMap"]["data"]["profile.yaml"].replace("0.0.0.0:8080", "127.0.0.1:0"))
    done, _ = run_cli("run", profile, env={"FAULTSERVER_CONTROL": "0.0.0.0:0", "FAULTSERVER_TOKEN": ""})
    assert done.returncode == 2
    assert "refusing to bind 0.0.0.0:0 without a token" in done.stderr


def test_servicemonitor_sends_the_token():
    [monitor] = _documents(KUBE / "overlays/servicemonitor/servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "control" and endpoint["path"] == "/metrics"
    assert endpoint["bearerTokenSecret"] == {"name": "faultserver-token", "key": "token"}


# --- rendering ---------------------------------------------------------------------------------


def _renderer() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def _render(directory: Path) -> list[dict[str, Any]]:
    command = _renderer()
    if command is None:
        pytest.skip(
            "neither kustomize nor kubectl is installed: the resources are validated one by one above"
        )
    done = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture
def kube_copy(tmp_path) -> Path:
    """deploy/kubernetes copied, with the token.env an operator creates for the overlay."""
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBE, copy)
    (copy / "overlays/ingress/token.env").write_text("token=0123456789abcdef\n")
    return copy


def test_kustomize_renders_the_base_and_every_rendered_resource_is_valid():
    docs = _render(BASE)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "Service"]
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "faultserver"
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_kustomize_renders_the_ingress_overlay(kube_copy):
    docs = _render(kube_copy / "overlays/ingress")
    by_kind = {doc["kind"]: doc for doc in docs}
    assert {"Namespace", "Ingress", "Deployment", "Secret"} <= set(by_kind)
    assert all(doc["metadata"].get("namespace") == "chaos" for doc in docs if doc["kind"] != "Namespace")
    secret = by_kind["Secret"]
    assert secret["metadata"]["name"] == "faultserver-token"  # the name the Deployment refers to
    assert "stringData" not in secret and set(secret["data"]) == {"token"}  # the empty one is gone
    [container] = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example/chaos/faultserver:0.1.0"
    backend = by_kind["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "faultserver", "port": {"name": "http"}}
    for doc in docs:
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_kustomize_renders_the_servicemonitor_overlay():
    docs = _render(KUBE / "overlays/servicemonitor")
    assert "ServiceMonitor" in {doc["kind"] for doc in docs}
