"""Deployment artefacts under deploy/: offline checks, no docker, no cluster.

* compose.yaml runs Redis plus the five services with the service contract's commands;
* the kustomize base and every overlay resolve (a small resolver below implements the
  kustomize features the manifests use; when a real ``kustomize``/``kubectl`` is on PATH
  its output must equal the resolver's) and every core object validates against the
  Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields fail);
* Deployments have native gRPC probes on a declared port, run non-root on a read-only
  root filesystem, and are scraped by Prometheus; KEDA ScaledObjects scale select and
  identify on the right streams and consumer groups;
* the gpu overlay gives a GPU to select and identify only;
* the image's entrypoint is ``samplescout``, and the container health check works
  against a real gRPC health server.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import ROOT

DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("cpu", "gpu")
TREES = ("base", *(f"overlays/{o}" for o in OVERLAYS))

# Oldest Kubernetes with GA native gRPC probes, and the newest schemas shipped.
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())

WORKERS = ("acquire", "select", "identify", "fuse")
SERVICES = ("control", *WORKERS)
CONTROL_PORT = 50051
WORKER_PORT = 50052
METRICS_PORT = 9100
# stage -> (stream, consumer group), the service contract.
STREAMS = {
    "acquire": ("samplescout:acquire", "acquire"),
    "select": ("samplescout:frames", "select"),
    "identify": ("samplescout:regions", "identify"),
    "fuse": ("samplescout:structures", "fuse"),
}
KEDA_SCALED = ("select", "identify")
GPU_SERVICES = ("select", "identify")

Obj = dict[str, Any]


# --------------------------------------------------------------------------- resolver


def _load_docs(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _key(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _merge_lists_by_name(base: list[Any], patch: list[Any]) -> list[Any] | None:
    """Strategic merge of a list of named objects (containers, env, volumes, ...)."""
    if not all(isinstance(x, dict) and "name" in x for x in [*base, *patch]):
        return None
    out = [copy.deepcopy(x) for x in base]
    for item in patch:
        for i, existing in enumerate(out):
            if existing["name"] == item["name"]:
                out[i] = _merge(existing, item, strategic=True)
                break
        else:
            out.append(copy.deepcopy(item))
    return out


def _merge(base: Any, patch: Any, *, strategic: bool) -> Any:
    """Strategic merge (built-in kinds) or JSON merge patch (custom resources)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = _merge(out[k], v, strategic=strategic)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if strategic and isinstance(base, list) and isinstance(patch, list):
        merged = _merge_lists_by_name(base, patch)
        if merged is not None:
            return merged
    return copy.deepcopy(patch)


def _pod_specs(obj: Obj) -> Iterator[Obj]:
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield obj["spec"]["template"]["spec"]


def _split_image(image: str) -> tuple[str, str | None]:
    name, _, tag = image.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return image, None


def resolve(directory: Path) -> list[Obj]:
    """Build a kustomization: resources, labels, patches (strategic merge), namespace,
    images. Only what deploy/k8s uses; anything else fails loudly."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    supported = {"apiVersion", "kind", "resources", "labels", "patches", "namespace", "images"}
    assert set(kust) <= supported, f"{directory}: resolver lacks {set(kust) - supported}"

    objs: list[Obj] = []
    for res in kust.get("resources", []):
        path = (directory / res).resolve()
        objs.extend(resolve(path) if path.is_dir() else _load_docs(path))

    for spec in kust.get("labels", []):
        assert not spec.get("includeSelectors"), "resolver: includeSelectors unsupported"
        for obj in objs:
            obj["metadata"].setdefault("labels", {}).update(spec["pairs"])
            if spec.get("includeTemplates") and "template" in obj.get("spec", {}):
                tmeta = obj["spec"]["template"].setdefault("metadata", {})
                tmeta.setdefault("labels", {}).update(spec["pairs"])

    for p in kust.get("patches", []):
        patch = yaml.safe_load(p["patch"]) if "patch" in p else _load_docs(directory / p["path"])[0]
        target = p.get("target")
        if target:
            assert set(target) <= {"kind", "name"}, f"resolver: target {target}"
            hits = [
                o
                for o in objs
                if re.fullmatch(target.get("kind", ".*"), o["kind"])
                and re.fullmatch(target.get("name", ".*"), o["metadata"]["name"])
            ]
        else:
            hits = [o for o in objs if _key(o) == _key(patch)]
        assert hits, f"{directory}: patch {p} matches nothing"
        for obj in hits:
            body = copy.deepcopy(patch)
            body["metadata"]["name"] = obj["metadata"]["name"]
            strategic = "." not in obj["apiVersion"].split("/")[0] or obj["apiVersion"] in (
                "apps/v1",
                "batch/v1",
            )
            objs[objs.index(obj)] = _merge(obj, body, strategic=strategic)

    if "namespace" in kust:
        for obj in objs:
            obj["metadata"]["namespace"] = kust["namespace"]

    for img in kust.get("images", []):
        for obj in objs:
            for pod in _pod_specs(obj):
                for c in [*pod.get("initContainers", []), *pod["containers"]]:
                    name, tag = _split_image(c["image"])
                    if name == img["name"]:
                        tag = img.get("newTag", tag)
                        c["image"] = img.get("newName", name) + (f":{tag}" if tag else "")
    return objs


@pytest.fixture(scope="module", params=TREES)
def tree(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    return request.param, resolve(K8S / request.param)


def by_kind(objs: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def main_container(dep: Obj) -> Obj:
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


# --------------------------------------------------------------------------- YAML, image


def test_every_yaml_file_parses() -> None:
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(files) >= 10
    for f in files:
        docs = _load_docs(f)
        assert docs, f
        assert all(isinstance(d, dict) for d in docs), f


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_entrypoint_user_and_variants() -> None:
    instr = _dockerfile_instructions()
    final = instr[max(i for i, (w, _) in enumerate(instr) if w == "FROM") :]
    entrypoint = [json.loads(r) for w, r in final if w == "ENTRYPOINT"]
    assert entrypoint == [["samplescout"]]
    cmd = [json.loads(r) for w, r in final if w == "CMD"][-1]
    assert cmd[:2] == ["serve", "control"]
    user = [r for w, r in final if w == "USER"][-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER, so runAsNonRoot can verify"
    args = {r.split("=")[0] for w, r in instr if w == "ARG"}
    assert "TORCH_VARIANT" in args
    assert "cuda)" in (DEPLOY / "Dockerfile").read_text()
    # Everything the image COPYs from the context survives the .dockerignore.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for w, r in instr:
        if w == "COPY" and "--from" not in r:
            for src in [s for s in r.split() if not s.startswith("--")][:-1]:
                assert (ROOT / src).exists(), src
                assert f"!{src}" in ignore, f"{src} is excluded from the build context"


def test_uid_matches_manifests() -> None:
    user = [r for w, r in _dockerfile_instructions() if w == "USER"][-1]
    uid = int(user.split(":")[0])
    for dep in by_kind(resolve(K8S / "base"), "Deployment").values():
        if dep["metadata"]["name"] != "redis":
            assert dep["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_manifests_match_the_code() -> None:
    """Stream and group names, settings and service commands are the ones the code uses."""
    from samplescout import bus
    from samplescout.app import STAGE_STREAMS
    from samplescout.cli import build_parser
    from samplescout.config import ENV_PREFIX, Settings

    # Each worker consumes its stage's stream in a group named after the stage.
    assert {name: (stream, name) for name, (stream, _) in STAGE_STREAMS.items()} == STREAMS
    assert bus.DEAD == "samplescout:dead"

    config = by_kind(resolve(K8S / "base"), "ConfigMap")["samplescout-config"]["data"]
    fields = {ENV_PREFIX + f.upper() for f in Settings.__dataclass_fields__}
    assert set(config) - fields == {"SAMPLESCOUT_REDIS_ADDRESS"}, "unknown settings"
    assert "SAMPLESCOUT_CONSUMER" not in config, "consumer names must differ per replica"
    settings = Settings.from_env(config)
    assert settings.redis_url == config["SAMPLESCOUT_REDIS_URL"]
    assert settings.log_format == "json"

    parser = build_parser()
    compose = _compose()["services"]
    for dep in by_kind(resolve(K8S / "base"), "Deployment").values():
        if dep["metadata"]["name"] != "redis":
            ns = parser.parse_args(main_container(dep)["args"])
            assert ns.metrics_port == METRICS_PORT
    for name in SERVICES:
        ns = parser.parse_args(compose[name]["command"])
        assert ns.service == name and ns.redis_url == "redis://redis:6379/0"


# --------------------------------------------------------------------------- compose


def _compose() -> Obj:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_redis_and_five_services() -> None:
    services = _compose()["services"]
    assert set(services) == {"redis", *SERVICES}
    assert services["redis"]["image"].startswith("redis:7")
    for name in SERVICES:
        svc = services[name]
        port = CONTROL_PORT if name == "control" else WORKER_PORT
        cmd = svc["command"]
        assert cmd[:2] == ["serve", name], name
        opts = dict(zip(cmd[2::2], cmd[3::2], strict=True))
        assert opts == {
            "--redis": "redis://redis:6379/0",
            "--grpc": f"0.0.0.0:{port}",
            "--metrics-port": str(METRICS_PORT),
        }, name
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / svc["build"]["context"] / "deploy/Dockerfile").is_file()
        assert svc["environment"]["SAMPLESCOUT_REDIS_URL"] == opts["--redis"]
        assert svc["environment"]["SAMPLESCOUT_LOG_FORMAT"] == "json"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert svc["healthcheck"]["test"] == ["CMD", "samplescout-healthcheck", f"127.0.0.1:{port}"]
        assert svc["read_only"] is True and "/tmp" in svc["tmpfs"]
        assert svc["stop_grace_period"] == "60s"
    assert services["control"]["ports"] == ["${SAMPLESCOUT_CONTROL_PORT:-50051}:50051"]
    assert not any("ports" in services[w] for w in WORKERS), "workers must scale freely"


def test_compose_gpu_override() -> None:
    gpu = yaml.safe_load((DEPLOY / "compose.gpu.yaml").read_text())["services"]
    assert set(gpu) == set(GPU_SERVICES)
    for svc in gpu.values():
        assert svc["build"]["args"]["TORCH_VARIANT"] == "cuda"
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


# --------------------------------------------------------------------------- kustomize


@pytest.mark.parametrize("name", TREES)
def test_resolver_matches_real_kustomize(name: str) -> None:
    if shutil.which("kustomize"):
        version, cmd = ["kustomize", "version"], ["kustomize", "build", str(K8S / name)]
    elif shutil.which("kubectl"):
        version, cmd = ["kubectl", "version", "--client"], ["kubectl", "kustomize", str(K8S / name)]
    else:
        pytest.skip("no kustomize or kubectl on PATH; the resolver alone is checked")
    try:
        v = subprocess.run(version, capture_output=True, text=True, timeout=60, check=True)
        if not re.search(r"(?i)(kustomize version: )?v5\.", v.stdout):
            pytest.skip(f"needs kustomize v5, {cmd[0]} reports: {v.stdout.strip()}")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        pytest.skip(f"{cmd[0]} does not run here: {exc}")
    real = {_key(o): o for o in yaml.safe_load_all(out.stdout) if o}
    ours = {_key(o): o for o in resolve(K8S / name)}
    assert real == ours


def test_base_is_namespace_agnostic_and_overlays_set_one() -> None:
    assert all("namespace" not in o["metadata"] for o in resolve(K8S / "base"))
    for overlay in OVERLAYS:
        objs = resolve(K8S / "overlays" / overlay)
        namespaces = {o["metadata"].get("namespace") for o in objs}
        assert len(namespaces) == 1 and None not in namespaces
        # KEDA's operator reaches Redis from its own namespace: the address it reads must
        # name the namespace this overlay deploys to.
        (ns,) = namespaces
        address = by_kind(objs, "ConfigMap")["samplescout-config"]["data"][
            "SAMPLESCOUT_REDIS_ADDRESS"
        ]
        assert address == f"redis.{ns}.svc.cluster.local:6379"


def test_core_objects_validate_against_kubernetes_schemas(tree: tuple[str, list[Obj]]) -> None:
    _, objs = tree
    core = [o for o in objs if not o["apiVersion"].startswith("keda.sh/")]
    assert {o["kind"] for o in core} == {"ConfigMap", "Deployment", "Service"}
    for version in K8S_VERSIONS:
        for obj in core:
            kubernetes_validate.validate(obj, version, strict=True)


def test_schema_validation_is_not_vacuous() -> None:
    dep = copy.deepcopy(by_kind(resolve(K8S / "base"), "Deployment")["select"])
    main_container(dep)["readinessProbe"]["grpc"]["prot"] = WORKER_PORT
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSIONS[-1], strict=True)


def test_one_deployment_and_service_per_component(tree: tuple[str, list[Obj]]) -> None:
    _, objs = tree
    deps, svcs = by_kind(objs, "Deployment"), by_kind(objs, "Service")
    assert set(deps) == set(svcs) == {"redis", *SERVICES}
    for name, svc in svcs.items():
        dep = deps[name]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        selector = dep["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        assert svc["spec"]["selector"] == selector, name
        port_names = {
            p["name"] for c in dep["spec"]["template"]["spec"]["containers"] for p in c["ports"]
        }
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names, name
    assert svcs["control"]["spec"]["ports"][0]["port"] == CONTROL_PORT
    assert svcs["control"]["spec"].get("clusterIP") != "None"
    for w in WORKERS:
        assert {p["port"] for p in svcs[w]["spec"]["ports"]} == {WORKER_PORT, METRICS_PORT}


def test_deployments_follow_the_service_contract(tree: tuple[str, list[Obj]]) -> None:
    _, objs = tree
    deps = by_kind(objs, "Deployment")
    config = by_kind(objs, "ConfigMap")["samplescout-config"]["data"]
    assert config["SAMPLESCOUT_REDIS_URL"].startswith("redis://redis:6379")
    assert config["SAMPLESCOUT_LOG_FORMAT"] == "json"
    assert all(k.startswith("SAMPLESCOUT_") for k in config)
    for name in SERVICES:
        dep = deps[name]
        pod = dep["spec"]["template"]["spec"]
        c = main_container(dep)
        port = CONTROL_PORT if name == "control" else WORKER_PORT
        assert c["args"] == [
            "serve",
            name,
            "--grpc",
            f"0.0.0.0:{port}",
            "--metrics-port",
            str(METRICS_PORT),
        ]
        assert c["envFrom"] == [{"configMapRef": {"name": "samplescout-config"}}]
        assert pod["terminationGracePeriodSeconds"] >= 30
        # Native gRPC probes on a declared containerPort.
        declared = {p["containerPort"] for p in c["ports"]}
        assert port in declared
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == port, (name, probe)
        # Prometheus scraping.
        ann = dep["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true"
        assert int(ann["prometheus.io/port"]) == METRICS_PORT in declared
        assert ann["prometheus.io/path"] == "/metrics"


def test_pods_are_locked_down(tree: tuple[str, list[Obj]]) -> None:
    _, objs = tree
    for name, dep in by_kind(objs, "Deployment").items():
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        mounts_by_volume = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(
                res["limits"]
            ), name
            writable = {m["mountPath"]: mounts_by_volume[m["name"]] for m in c["volumeMounts"]}
            if name != "redis":
                assert "emptyDir" in writable["/tmp"], name


def test_keda_scaledobjects(tree: tuple[str, list[Obj]]) -> None:
    _, objs = tree
    deps = by_kind(objs, "Deployment")
    scaled = by_kind(objs, "ScaledObject")
    assert set(scaled) == set(KEDA_SCALED)
    config = by_kind(objs, "ConfigMap")["samplescout-config"]["data"]
    for so in scaled.values():
        assert so["apiVersion"] == "keda.sh/v1alpha1"
        jsonschema.validate(so, SCALED_OBJECT_SCHEMA)
        target = so["spec"]["scaleTargetRef"]
        assert target.get("kind", "Deployment") == "Deployment"
        dep = deps[target["name"]]
        assert "replicas" not in dep["spec"], "KEDA owns the replica count"
        assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "redis-streams"
        assert (meta["stream"], meta["consumerGroup"]) == STREAMS[target["name"]]
        assert {"lagCount", "pendingEntriesCount"} & set(meta)
        assert {"address", "host", "addressFromEnv", "hostFromEnv"} & set(meta)
        if "addressFromEnv" in meta:
            # KEDA resolves it from the target container's environment.
            assert main_container(dep)["envFrom"][0]["configMapRef"]["name"] == (
                "samplescout-config"
            )
            host, _, port = config[meta["addressFromEnv"]].rpartition(":")
            assert host and port.isdigit()


def test_gpu_only_for_select_and_identify(tree: tuple[str, list[Obj]]) -> None:
    name, objs = tree
    for dep_name, dep in by_kind(objs, "Deployment").items():
        c = main_container(dep)
        gpus = [p for p in c["resources"].values() if "nvidia.com/gpu" in p]
        pod = dep["spec"]["template"]["spec"]
        if name == "overlays/gpu" and dep_name in GPU_SERVICES:
            assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
            assert c["resources"]["requests"]["nvidia.com/gpu"] == 1
            assert c["image"].endswith("-cuda")
            assert pod["nodeSelector"] and pod["tolerations"]
        else:
            assert not gpus, (name, dep_name)
            assert not c["image"].endswith("-cuda")
            assert "nodeSelector" not in pod
    if name.startswith("overlays/"):
        images = {main_container(d)["image"] for d in by_kind(objs, "Deployment").values()}
        assert not images & {"samplescout", "samplescout-cuda"}, "overlay must set the image"


SCALED_OBJECT_SCHEMA: Obj = {
    # The part of KEDA's ScaledObject CRD (keda.sh/v1alpha1) these manifests use.
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"type": "string"},
                        "kind": {"type": "string"},
                        "apiVersion": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "advanced": {"type": "object"},
                "fallback": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "useCachedMetrics": {"type": "boolean"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            # KEDA trigger metadata is map[string]string: numbers quoted.
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                            },
                        },
                    },
                },
            },
        },
    },
}


# --------------------------------------------------------------------------- health check


def _healthcheck_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "grpc_health_check", DEPLOY / "grpc_health_check.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_container_healthcheck_against_a_real_health_server() -> None:
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    hc = _healthcheck_module()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        target = f"127.0.0.1:{port}"
        servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        assert hc.main([target, "--timeout", "5"]) == 0
        servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert hc.main([target, "--timeout", "5"]) == 1
    finally:
        server.stop(None)
    assert hc.main([target, "--timeout", "0.5"]) == 1
