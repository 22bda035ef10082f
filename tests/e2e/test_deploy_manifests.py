"""deploy/ holds Kubernetes manifests that validate, offline, and keep secrets out of files.

Built-in kinds are checked against the Kubernetes OpenAPI schemas that `kubernetes-validate`
ships (strict: an unknown field fails); KubeRay's RayCluster and RayJob against the CRD
schemas vendored in deploy/k8s/crds/ (KubeRay v1.7.0), made strict the same way, and their
pod templates against Kubernetes' own PodTemplate schema as well. Then the properties the
README promises: every secret through `secretKeyRef` to a Secret the README creates from the
environment, no secret value or password-bearing URL anywhere, a GPU worker group,
autoscaling, MLflow with basic-auth on PostgreSQL and S3, and a RayJob whose entrypoint the
real CLI accepts and whose spec the real loader accepts. No cluster, no network.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import socket
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CRDS = DEPLOY / "k8s" / "crds"
KUBERAY_VERSION = "v1.7.0"
# the oldest and the newest Kubernetes minor versions the manifests are checked against
K8S_VERSIONS = ("1.30", "1.37")
CRD_FILES = {"RayCluster": "rayclusters.ray.io.json", "RayJob": "rayjobs.ray.io.json"}
SECRET_ENV = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL", re.IGNORECASE)
SECRET_FIELD = re.compile(r"password|passwd|secret|token|credential", re.IGNORECASE)
URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://([^\s/'\"@]+@)?([A-Za-z0-9.-]+)(?::(\d+))?")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schemas come from installed files only: any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access during a deploy-manifest test: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- loading --------------------------------------------------------------------------


@cache
def documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    """Every YAML document under deploy/, as ``(file#index, document)``."""
    found = []
    for path in sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                found.append((f"{path.relative_to(ROOT)}#{i}", doc))
    return tuple(found)


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    return doc


@cache
def crd(kind: str) -> dict[str, Any]:
    return json.loads((CRDS / CRD_FILES[kind]).read_text())


def strict(schema: Any) -> Any:
    """``schema`` with unknown fields refused (``additionalProperties: false`` on every
    object that lists its properties and does not keep unknown fields), as the API
    server's strict field validation (kubectl's default) refuses them."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in ("properties", "patternProperties"):
            out[key] = {name: strict(sub) for name, sub in value.items()}
        elif key in ("default", "enum", "example"):
            out[key] = value
        else:
            out[key] = strict(value)
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_validator(kind: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(strict(crd(kind)["openAPIV3Schema"]))


def crd_errors(doc: dict[str, Any]) -> list[str]:
    errors = crd_validator(doc["kind"]).iter_errors(doc)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def ray_cluster_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in of_kind("RayCluster"):
        yield f"RayCluster/{doc['metadata']['name']}", doc["spec"]
    for doc in of_kind("RayJob"):
        yield f"RayJob/{doc['metadata']['name']}", doc["spec"]["rayClusterSpec"]


def pod_templates(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind, spec = doc["kind"], doc.get("spec", {})
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield "template", spec["template"]
    clusters = {"RayCluster": spec, "RayJob": spec.get("rayClusterSpec")}.get(kind)
    if clusters:
        yield "headGroupSpec.template", clusters["headGroupSpec"]["template"]
        for group in clusters.get("workerGroupSpecs", []):
            yield f"workerGroupSpecs[{group['groupName']}].template", group["template"]
    if kind == "RayJob" and "submitterPodTemplate" in spec:
        yield "submitterPodTemplate", spec["submitterPodTemplate"]


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    pod = template["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(path, key, value)`` for every mapping entry, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk(item, f"{path}[{i}]")


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def env_vars(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, key, value in walk(doc):
        if key == "env" and isinstance(value, list):
            for var in value:
                yield f"{path}.env[{var['name']}]", var


def secret_refs(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(secret, key)`` for every Secret a document reads."""
    for _, key, value in walk(doc):
        if key == "secretKeyRef":
            yield value["name"], value["key"]
        if key == "authOptions" and value.get("mode") == "token" and value.get("secretName"):
            yield value["secretName"], "auth_token"  # the key KubeRay reads the token from


def readme_secrets() -> dict[str, dict[str, str]]:
    """The Secrets deploy/README.md creates: ``{name: {key: value expression}}``."""
    text = (DEPLOY / "README.md").read_text().replace("\\\n", " ")
    secrets: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if "create secret generic" not in line:
            continue
        words = shlex.split(line, posix=False)
        name = words[words.index("generic") + 1]
        literals = [w.split("=", 2)[1:] for w in words if w.startswith("--from-literal=")]
        secrets[name] = {key: value for key, value in literals}
    return secrets


# --- schemas --------------------------------------------------------------------------


def test_deploy_holds_the_expected_manifests() -> None:
    kinds = sorted({(doc["apiVersion"], doc["kind"]) for _, doc in documents()})
    assert kinds == [
        ("apps/v1", "Deployment"),
        ("apps/v1", "StatefulSet"),
        ("ray.io/v1", "RayCluster"),
        ("ray.io/v1", "RayJob"),
        ("v1", "ConfigMap"),
        ("v1", "Service"),
    ]
    assert not of_kind("Secret"), "secrets are created with kubectl from the environment"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_builtin_kinds_validate_against_the_kubernetes_schemas(version: str) -> None:
    checked = 0
    for where, doc in documents():
        if doc["apiVersion"].startswith("ray.io/"):
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(map(str, err.path))
            pytest.fail(f"{where} ({doc['kind']}), Kubernetes {version}: {path}: {err.message}")
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_ray_pod_templates_validate_against_the_kubernetes_schemas(version: str) -> None:
    """The CRDs embed PodTemplateSpec; check those templates against Kubernetes' own too."""
    for where, doc in documents():
        if not doc["apiVersion"].startswith("ray.io/"):
            continue
        for field, template in pod_templates(doc):
            wrapped = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "check"},
                "template": template,
            }
            try:
                kubernetes_validate.validate(wrapped, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{where} {field}: {'.'.join(map(str, err.path))}: {err.message}")


def test_the_vendored_crds_are_kuberays_v1_schemas() -> None:
    for kind, filename in CRD_FILES.items():
        vendored = crd(kind)
        assert vendored["kind"] == kind and vendored["apiVersion"] == "ray.io/v1"
        assert vendored["source"]["version"] == KUBERAY_VERSION
        assert re.fullmatch(r"[0-9a-f]{40}", vendored["source"]["commit"])
        assert KUBERAY_VERSION in (CRDS / "README.md").read_text()
        schema = vendored["openAPIV3Schema"]
        jsonschema.Draft4Validator.check_schema(schema)
        refs = [v for _, k, v in walk(schema) if k == "$ref"]
        assert refs == [], f"{filename} refers elsewhere: {refs[:3]}"


@pytest.mark.parametrize("kind", sorted(CRD_FILES))
def test_kuberay_resources_validate_against_the_vendored_crds(kind: str) -> None:
    docs = of_kind(kind)
    assert docs, f"no {kind} under deploy/"
    for doc in docs:
        assert crd_errors(doc) == [], f"{kind}/{doc['metadata']['name']}"


def test_the_crd_check_refuses_unknown_and_mistyped_fields() -> None:
    cluster = copy.deepcopy(one("RayCluster", "paretotune"))
    cluster["spec"]["workerGroupSpecs"][0]["minReplica"] = 0
    cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    cluster["spec"]["enableInTreeAutoscaling"] = "yes"
    errors = crd_errors(cluster)
    assert len(errors) == 3, errors
    assert any("minReplica" in e for e in errors) and any("imagee" in e for e in errors)
    assert any(e.startswith("spec.enableInTreeAutoscaling") for e in errors)


def test_the_kubernetes_check_refuses_unknown_fields() -> None:
    deployment = copy.deepcopy(one("Deployment", "mlflow"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagee"):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_no_document_sets_a_field_only_cel_rules_could_check() -> None:
    """The CRDs' x-kubernetes-validations (CEL) are not evaluated here: none may apply."""
    for kind in CRD_FILES:
        ruled = {
            path.replace(".properties", "").removeprefix(".openAPIV3Schema")
            for path, key, _ in walk(crd(kind))
            if key == "x-kubernetes-validations" and ".template." not in path
        }
        ruled = {p.replace(".items", "") for p in ruled}
        for doc in of_kind(kind):
            for path in ruled:
                node: Any = doc
                for part in filter(None, path.split(".")):
                    node = node.get(part) if isinstance(node, dict) else None
                assert node is None, f"{kind}/{doc['metadata']['name']} sets {path}"


# --- KubeRay: groups, GPUs, autoscaling, the operator's own checks ----------------------


def test_every_ray_cluster_autoscales_a_cpu_and_a_gpu_group() -> None:
    specs = list(ray_cluster_specs())
    assert len(specs) == 2
    for where, spec in specs:
        assert spec["enableInTreeAutoscaling"] is True, where
        groups = {group["groupName"]: group for group in spec["workerGroupSpecs"]}
        assert set(groups) == {"cpu", "gpu"}, where
        for name, group in groups.items():
            low, high = group["minReplicas"], group["maxReplicas"]
            assert 0 <= low <= group.get("replicas", low) <= high and high >= 1, (where, name)
            (container,) = containers(group["template"])
            limits = container["resources"]["limits"]
            gpus = int(limits.get("nvidia.com/gpu", 0))
            if name == "gpu":
                assert gpus >= 1, where
                assert group["rayStartParams"]["num-gpus"] == str(gpus), where
                assert container["resources"]["requests"]["nvidia.com/gpu"] == gpus, where
                tolerations = group["template"]["spec"].get("tolerations", [])
                assert any(t["key"] == "nvidia.com/gpu" for t in tolerations), where
            else:
                assert gpus == 0 and "num-gpus" not in group["rayStartParams"], where
        head = spec["headGroupSpec"]
        assert head["rayStartParams"]["num-cpus"] == "0", f"{where}: trials stay off the head"
        assert head["rayStartParams"]["dashboard-host"] == "0.0.0.0", where


def test_what_the_kuberay_operator_itself_checks() -> None:
    """A few of KubeRay v1.7.0's controller validations (utils/validation.go) that apply."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement
    from packaging.version import Version

    dns1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
    for doc in of_kind("RayCluster"):
        name = doc["metadata"]["name"]
        assert dns1035.fullmatch(name) and len(name) <= 53
    for doc in of_kind("RayJob"):
        name = doc["metadata"]["name"]
        assert dns1035.fullmatch(name) and len(name) <= 47
        spec = doc["spec"]
        assert spec.get("backoffLimit", 1) > 0 and spec.get("ttlSecondsAfterFinished", 0) >= 0
        assert "clusterSelector" not in spec and spec["shutdownAfterJobFinishes"] is True
    ray_requirement = next(
        Requirement(r) for r in requires("paretotune") or [] if Requirement(r).name == "ray"
    )
    for where, spec in ray_cluster_specs():
        version = Version(spec["rayVersion"])
        assert version in ray_requirement.specifier, f"{where}: {version} vs {ray_requirement}"
        if spec.get("authOptions", {}).get("mode") == "token":
            assert version >= Version("2.52.0"), f"{where}: token auth needs Ray 2.52"
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            assert containers(group["template"]), where
            params = group["rayStartParams"]
            assert "labels" not in params, where
            if {"num-cpus", "num-gpus", "memory", "resources"} & set(params):
                assert not group.get("resources"), f"{where}: resources set twice"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for _, spec in ray_cluster_specs():
        assert f"rayproject/ray:{spec['rayVersion']}-py311" in dockerfile


def test_the_rayjobs_cluster_is_the_rayclusters_plus_the_spec_volume() -> None:
    """The two cluster definitions are written out twice; keep them from drifting apart."""

    def comparable(spec: dict[str, Any]) -> dict[str, Any]:
        spec = copy.deepcopy(spec)
        for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
            group.pop("replicas", None)
            pod = group["template"]["spec"]
            pod.pop("volumes", None)
            for container in pod["containers"]:
                container.pop("volumeMounts", None)
        return spec

    (cluster,) = of_kind("RayCluster")
    (job,) = of_kind("RayJob")
    assert comparable(job["spec"]["rayClusterSpec"]) == comparable(cluster["spec"])


def test_the_rayjob_runs_its_configmap_spec_with_the_real_cli(tmp_path: Path) -> None:
    from paretotune.cli._main import _parser
    from paretotune.spaces import load_spec

    (job,) = of_kind("RayJob")
    args = _parser().parse_args(shlex.split(job["spec"]["entrypoint"])[1:])
    assert args.command == "run"
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    (container,) = containers(head)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in head["spec"]["volumes"]}
    sources = [
        (volumes[name]["configMap"]["name"], path)
        for name, path in mounts.items()
        if args.spec.startswith(path.rstrip("/") + "/") and "configMap" in volumes[name]
    ]
    assert len(sources) == 1, f"{args.spec} is on no ConfigMap mounted in the head"
    configmap, mount = sources[0]
    key = args.spec[len(mount.rstrip("/")) + 1 :]
    spec_file = tmp_path / key
    spec_file.write_text(one("ConfigMap", configmap)["data"][key])
    assert load_spec(spec_file).name
    # no --storage/--tracking-uri: `paretotune run` reads them from the head's environment
    env = {var["name"]: var for var in container["env"]}
    if args.storage is None:
        assert env["PARETOTUNE_STORAGE"]["value"].startswith("postgresql")
    if args.tracking_uri is None:
        assert env["MLFLOW_TRACKING_URI"]["value"].startswith("http")


def test_only_the_ray_head_holds_the_study_credentials() -> None:
    for where, spec in ray_cluster_specs():
        (head,) = containers(spec["headGroupSpec"]["template"])
        names = {var["name"] for var in head["env"]}
        assert {"PGPASSWORD", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= names
        for group in spec["workerGroupSpecs"]:
            for container in containers(group["template"]):
                assert not container.get("env") and not container.get("envFrom"), where
        assert spec["authOptions"] == {"mode": "token", "secretName": "paretotune-ray-auth"}


# --- MLflow ---------------------------------------------------------------------------


def test_mlflow_serves_with_basic_auth_on_postgres_and_s3() -> None:
    deployment = one("Deployment", "mlflow")
    (container,) = containers(deployment["spec"]["template"])
    command = " ".join([*container.get("command", []), *container.get("args", [])])
    if container.get("command") == ["sh", "-c"]:
        script = container["args"][0]
        checked = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
    server = command[command.index("mlflow server") :]
    assert re.search(r"--app-name[ =]basic-auth\b", server)
    assert re.search(r"--backend-store-uri[ =]postgresql(\+psycopg2)?://", server)
    assert re.search(r"--artifacts-destination[ =]\"?s3://", server)
    assert "--serve-artifacts" in server and "--no-serve-artifacts" not in server
    assert re.search(r"--allowed-hosts[ =]\"?[^ ]*\bmlflow\b", server), "the Service name"
    env = {var["name"]: var for var in container["env"]}
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio:9000"
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "PGPASSWORD",
        "MLFLOW_AUTH_ADMIN_USERNAME",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
    ):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    # the auth config: mounted where MLFLOW_AUTH_CONFIG_PATH points, users kept in PostgreSQL
    config_path = Path(env["MLFLOW_AUTH_CONFIG_PATH"]["value"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    (volume,) = [
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    ]
    ini = one("ConfigMap", volume["configMap"]["name"])["data"][config_path.name]
    assert re.search(r"^database_uri = postgresql(\+psycopg2)?://", ini, re.MULTILINE)
    assert not re.search(r"admin_password", ini)


# --- secrets --------------------------------------------------------------------------


def secret_problems(docs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """What breaks the rule "secrets only by reference" in ``docs``."""
    problems = []
    for where, doc in docs:
        if doc["kind"] == "Secret":
            problems.append(f"{where}: a Secret manifest")
        for path, var in env_vars(doc):
            if SECRET_ENV.search(var["name"]) and "secretKeyRef" not in var.get("valueFrom", {}):
                problems.append(f"{where} {path}: not from a secretKeyRef")
        for path, key, value in walk(doc):
            if key == "envFrom":
                problems.append(f"{where} {path}: envFrom (use secretKeyRef, one per variable)")
            if isinstance(value, str) and SECRET_FIELD.search(key) and not key.endswith("Name"):
                problems.append(f"{where} {path}.{key}: a literal value")
        for text in strings(doc):
            for match in URL.finditer(text):
                if match.group(2) and ":" in match.group(2):
                    problems.append(f"{where}: credentials in the URL {match.group(0)!r}")
            for line in text.splitlines():
                if re.match(r"\s*\w*(password|secret|token)\w*\s*[=:]\s*\S", line, re.I):
                    problems.append(f"{where}: {line.strip()!r}")
            if re.search(r"\$\(\w*(PASS|SECRET|TOKEN|KEY)\w*\)", text):
                problems.append(f"{where}: a secret expanded into a command line: {text[:60]!r}")
    return problems


def test_no_secret_value_is_in_any_manifest() -> None:
    assert secret_problems(list(documents())) == []


def test_the_secret_check_catches_what_it_should() -> None:
    leaky = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "leaky"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "env": [
                                {"name": "POSTGRES_PASSWORD", "value": "hunter2"},
                                {"name": "DB", "value": "postgresql://u:hunter2@postgres/db"},
                            ],
                            "args": ["--uri", "postgresql://u:$(POSTGRES_PASSWORD)@db/x"],
                            "envFrom": [{"secretRef": {"name": "s"}}],
                        }
                    ]
                }
            }
        },
    }
    config = {"kind": "ConfigMap", "data": {"auth.ini": "[mlflow]\nadmin_password = x\n"}}
    secret = {"kind": "Secret", "stringData": {"password": "CHANGE-ME"}}
    problems = secret_problems([("leaky", leaky), ("config", config), ("secret", secret)])
    assert len(problems) == 8, problems


def test_every_secret_read_is_one_the_readme_creates_from_the_environment() -> None:
    created = readme_secrets()
    read = {ref for _, doc in documents() for ref in secret_refs(doc)}
    assert read, "no secretKeyRef at all"
    assert read == {(name, key) for name, keys in created.items() for key in keys}
    for name, keys in created.items():
        for key, value in keys.items():
            assert re.fullmatch(r'"?\$\{?\w+\}?"?', value), f"{name}/{key}: {value}"


# --- wiring ---------------------------------------------------------------------------


def test_every_in_cluster_url_names_a_service_and_its_port() -> None:
    services = {
        doc["metadata"]["name"]: {port["port"] for port in doc["spec"]["ports"]}
        for doc in of_kind("Service")
    }
    seen = set()
    for where, doc in documents():
        for text in strings(doc):
            for match in URL.finditer(text):
                host, port = match.group(3), match.group(4)
                if "." in host or host in ("localhost",):
                    continue
                assert host in services, f"{where}: {match.group(0)} names no Service"
                assert port and int(port) in services[host], f"{where}: {match.group(0)}"
                seen.add(host)
    assert seen == {"postgres", "mlflow", "minio"}


def test_every_configmap_mounted_is_defined() -> None:
    configmaps = {doc["metadata"]["name"] for doc in of_kind("ConfigMap")}
    for where, doc in documents():
        for _, key, value in walk(doc):
            if key == "configMap":
                assert value["name"] in configmaps, f"{where}: {value['name']}"
