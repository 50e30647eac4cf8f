"""Scaling workers on the queue: the Kubernetes manifests (listener, GPU workers, Redis, KEDA)
and the compose file agree with the code.

Checked by reading the files (no cluster, no Docker where the suite runs): every manifest
parses; every ``brgan`` command a manifest, unit or deploy note runs exists in the CLI with
valid options (parsed by the CLI's own typer/click parser, nothing is run); every BRGAN_*
variable a pod gets is a real setting and the values load; the Redis list KEDA watches is the
Celery queue's list, on the broker the workers and the listener use (and, with a real
``redis-server``, a queued study lands in that very list); workers request a GPU and outlast
their longest study on scale-down; the listener is one replica with its spool on a PVC.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import pytest
import typer

from plugin.cli.main import app as cli_app
from plugin.config import Settings, load_settings
from plugin.queue.app import ANALYZE_STUDY, GPU_QUEUE, make_celery, queue_depth

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed in this environment")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
K8S_DIR = DEPLOY / "k8s"
K8S_FILES = sorted(K8S_DIR.glob("*.yaml"))
K8S_README = K8S_DIR / "README.md"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
BRGAN_IMAGE = "brgan-pacs:"
# The bound the docs promise for a worker to finish its study after SIGTERM (k8s, compose and
# systemd alike); far above the longest study measured (about 15 s on 2 CPU cores).
WORKER_GRACE_S = 300

Doc = dict[str, Any]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BRGAN_* variable of the caller's shell leaks into the settings under test."""
    for name in list(os.environ):
        if name.startswith("BRGAN_"):
            monkeypatch.delenv(name)


# -- reading the manifests -----------------------------------------------------------------------
def k8s_docs() -> list[tuple[Path, Doc]]:
    docs: list[tuple[Path, Doc]] = []
    for path in K8S_FILES:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                docs.append((path, doc))
    return docs


def find(kind: str, name: str) -> Doc:
    matches = [d for _, d in k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name} in deploy/k8s, found {len(matches)}"
    return matches[0]


def only(kind: str) -> Doc:
    matches = [d for _, d in k8s_docs() if d["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind} in deploy/k8s, found {len(matches)}"
    return matches[0]


def pod_spec(deployment: Doc) -> Doc:
    return deployment["spec"]["template"]["spec"]


def main_container(deployment: Doc) -> Doc:
    (container,) = pod_spec(deployment)["containers"]
    return container


def dockerfile_cmd() -> list[str]:
    match = re.search(r"^CMD (\[.*\])$", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, "deploy/Dockerfile has no CMD [...]"
    return list(yaml.safe_load(match.group(1)))


def brgan_argv(container: Doc) -> list[str] | None:
    """What follows ``brgan`` when this container starts; None if it does not run brgan."""
    if not str(container.get("image", "")).startswith(BRGAN_IMAGE):
        return None
    if "command" in container:  # replaces the image's ENTRYPOINT ["brgan"]
        argv = [*container["command"], *container.get("args", [])]
        return argv[1:] if Path(argv[0]).name == "brgan" else None
    return list(container["args"]) if "args" in container else dockerfile_cmd()


def expand(value: str, defined: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion, over variables defined earlier in the container."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in defined, f"$({name}) is used before it is defined (left as is by k8s)"
        return defined[name]

    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", one, value)


def container_env(container: Doc) -> dict[str, str]:
    """The container's variables as the process sees them; secrets become stand-ins."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(str(item["value"]), env)
        else:
            ref = item["valueFrom"].get("secretKeyRef") or item["valueFrom"]["configMapKeyRef"]
            env[item["name"]] = f"{ref['name']}-{ref['key']}".replace(".", "-")
    return env


def secret_of(container: Doc, variable: str) -> tuple[str, str]:
    (item,) = [e for e in container.get("env", []) if e["name"] == variable]
    ref = item["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


def broker_url(deployment: Doc) -> SplitResult:
    env = container_env(main_container(deployment))
    assert "BRGAN_BROKER_URL" in env, f"{deployment['metadata']['name']} gets no broker URL"
    return urlsplit(env["BRGAN_BROKER_URL"])


def password_variable(deployment: Doc) -> str:
    """The variable whose ``$(...)`` is the password in the container's BRGAN_BROKER_URL."""
    (item,) = [e for e in main_container(deployment)["env"] if e["name"] == "BRGAN_BROKER_URL"]
    match = re.fullmatch(r"rediss?://:\$\(([A-Z_]+)\)@[^@]+", item["value"])
    assert match, f"unexpected broker URL form: {item['value']}"
    return match.group(1)


def compose() -> Doc:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def compose_argv(service: Doc) -> list[str] | None:
    if not str(service.get("image", "")).startswith(BRGAN_IMAGE):
        return None
    command = service.get("command", dockerfile_cmd())
    return shlex.split(command) if isinstance(command, str) else list(command)


def duration_s(value: str | int) -> float:
    """A compose duration (``5m``, ``30s``, ``1m30s``) in seconds."""
    if isinstance(value, int):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value}"
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}
    return sum(float(n) * scale[u] for n, u in parts)


# -- every manifest parses and hangs together ----------------------------------------------------
def test_the_manifests_parse_and_name_what_they_use() -> None:
    assert {p.name for p in K8S_FILES} >= {"brgan.yaml", "redis.yaml", "keda.yaml"}
    docs = k8s_docs()
    seen: set[tuple[str, str]] = set()
    for path, doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{path.name}: incomplete doc"
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in seen, f"{path.name}: {key} defined twice"
        seen.add(key)
    claims = {name for kind, name in seen if kind == "PersistentVolumeClaim"}
    configmaps = {name for kind, name in seen if kind == "ConfigMap"}
    text = "\n".join(p.read_text(encoding="utf-8") for p in [*K8S_FILES, K8S_README])
    created = set(re.findall(r"kubectl create secret generic ([a-z0-9-]+)", text))
    deployments = [d for _, d in docs if d["kind"] == "Deployment"]
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        spec = pod_spec(deployment)
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), f"{name}: selector misses its own pods"
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, name
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            assert mounts <= {v["name"] for v in spec.get("volumes", [])}, name
            refs = [e["valueFrom"]["secretKeyRef"] for e in container.get("env", [])
                    if "secretKeyRef" in e.get("valueFrom", {})]  # fmt: skip
            refs += [e["secretRef"] for e in container.get("envFrom", []) if "secretRef" in e]
            for ref in refs:
                assert ref.get("optional") or ref["name"] in created, (
                    f"{name} needs Secret {ref['name']}, which no `kubectl create secret` "
                    "line in deploy/k8s creates"
                )
    for service in (d for _, d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        chosen = [
            d
            for d in deployments
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(chosen) == 1, f"Service {service['metadata']['name']} selects {len(chosen)}"
        ports = {p["name"] for c in pod_spec(chosen[0])["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{service['metadata']['name']}: {port}"


# -- every brgan command exists, with valid options ----------------------------------------------
def check_cli(argv: list[str], where: str) -> None:
    """Parse ``brgan ARGV`` with the CLI's own parser (typer/click), without running it."""
    command: Any = typer.main.get_command(cli_app)
    path, rest = ["brgan"], list(argv)
    while hasattr(command, "commands"):  # a group: its options, then a sub-command
        while rest and rest[0].startswith("-"):
            option = rest.pop(0)
            param = next((p for p in command.params if option.split("=")[0] in p.opts), None)
            assert param is not None, f"{where}: `{' '.join(path)}` has no option {option}"
            if "=" not in option and not getattr(param, "is_flag", False):
                rest.pop(0)
        assert rest, f"{where}: `{' '.join(path)}` needs a sub-command"
        name = rest.pop(0)
        assert name in command.commands, f"{where}: there is no `{' '.join(path)} {name}`"
        command = command.commands[name]
        path.append(name)
    try:
        command.make_context(" ".join(path), rest)
    except Exception as exc:  # the CLI's usage errors: unknown option, bad value, extra argument
        pytest.fail(f"{where}: `{' '.join([*path, *rest])}` is refused by the CLI: {exc}")


def deploy_commands() -> list[tuple[str, list[str]]]:
    """``(where, argv after brgan)`` of every brgan invocation in the deploy files."""
    found: list[tuple[str, list[str]]] = []
    for path, doc in k8s_docs():
        if doc["kind"] != "Deployment":
            continue
        spec = pod_spec(doc)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            argv = brgan_argv(container)
            if argv is not None:
                found.append((f"{path.name} {doc['metadata']['name']}/{container['name']}", argv))
    for name, service in compose()["services"].items():
        argv = compose_argv(service)
        if argv is not None:
            found.append((f"{COMPOSE.name} {name}", argv))
    for unit in UNITS:
        for line in unit.read_text(encoding="utf-8").splitlines():
            if line.startswith("ExecStart="):
                program, *argv = shlex.split(line.removeprefix("ExecStart="))
                assert Path(program).name == "brgan", f"{unit.name}: {line}"
                found.append((unit.name, argv))
    # Admin commands the files tell people to run: `kubectl exec X -- brgan ...`,
    # `docker compose exec X brgan ...`.
    notes = re.compile(r"\bexec\s+\S+\s+(?:--\s+)?brgan\s+([^\n`#|;&]+)")
    for path in [*K8S_FILES, K8S_README, COMPOSE, *UNITS]:
        for match in notes.finditer(path.read_text(encoding="utf-8")):
            found.append((f"{path.name} note", shlex.split(match.group(1))))
    return found


def test_every_brgan_command_in_the_deploy_files_exists() -> None:
    commands = deploy_commands()
    subcommands = {argv[0] for _, argv in commands if argv}
    assert {"serve", "worker", "models", "status"} <= subcommands, subcommands
    for where, argv in commands:
        check_cli(argv, where)


@pytest.mark.parametrize(
    "argv",
    [["workers"], ["worker", "--concurrency", "0"], ["serve", "--no-such"], ["models"],
     ["models", "register"], ["status", "extra"], ["--nope", "serve"]],
    ids=" ".join,
)  # fmt: skip
def test_the_command_check_refuses_what_the_cli_refuses(argv: list[str]) -> None:
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        check_cli(argv, "example")


# -- every BRGAN_* variable is a real setting, and the values load -------------------------------
KNOWN = {f"BRGAN_{field.upper()}" for field in Settings.model_fields} | {"BRGAN_CONFIG"}


def brgan_containers() -> list[tuple[str, Doc, Doc]]:
    """``(where, pod spec, container)`` of every container that runs brgan."""
    return [
        (f"{path.name} {doc['metadata']['name']}/{container['name']}", pod_spec(doc), container)
        for path, doc in k8s_docs()
        if doc["kind"] == "Deployment"
        for container in pod_spec(doc)["containers"]
        if brgan_argv(container) is not None
    ]


def test_k8s_environment_names_real_settings_and_loads(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    containers = brgan_containers()
    assert len(containers) >= 2
    for path in K8S_FILES:
        named = set(re.findall(r"\b(BRGAN_[A-Z_]+)\b", path.read_text(encoding="utf-8")))
        assert named <= KNOWN, f"{path.name} names unknown variables: {sorted(named - KNOWN)}"
    for where, spec, container in containers:
        env = container_env(container)
        with monkeypatch.context() as patch:
            for name, value in env.items():
                if not name.startswith("BRGAN_"):
                    continue
                assert name in KNOWN, f"{where}: {name} is not a setting"
                if name == "BRGAN_CONFIG":
                    value = str(configmap_file(spec, container, value, tmp_path))
                patch.setenv(name, value)
            settings = load_settings()  # every value parses
        assert settings.broker_url is not None, f"{where} runs without the broker (embedded)"


def test_probes_and_scrapes_reach_the_endpoints_the_settings_open(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every brgan container declares the metrics port its settings open, on an address the
    kubelet and Prometheus reach; its liveness probe is /healthz there; the worker's readiness
    is /readyz; the listener stays ready while Redis is down (readiness on the DICOM port)."""
    for where, spec, container in brgan_containers():
        with monkeypatch.context() as patch:
            for name, value in container_env(container).items():
                if name == "BRGAN_CONFIG":
                    value = str(configmap_file(spec, container, value, tmp_path))
                if name.startswith("BRGAN_"):
                    patch.setenv(name, value)
            settings = load_settings()
        worker = brgan_argv(container)[0] == "worker"
        port = settings.worker_metrics_port if worker else settings.metrics_port
        assert settings.metrics_host == "0.0.0.0", f"{where}: metrics only on the pod's loopback"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == port, where
        live = container["livenessProbe"]["httpGet"]
        assert (live["path"], live["port"]) == ("/healthz", "metrics"), where
        ready = container["readinessProbe"]
        if worker:
            assert ready["httpGet"] == {"path": "/readyz", "port": "metrics"}, where
        else:
            assert ready["tcpSocket"] == {"port": "dicom"}, where
        deployment = find("Deployment", where.split(" ")[1].split("/")[0])
        notes = deployment["spec"]["template"]["metadata"]["annotations"]
        assert notes["prometheus.io/port"] == str(port), where
    services = compose()["services"]
    for name, port, path in (
        ("brgan-listener", 9101, "/healthz"),
        ("brgan-worker", 9102, "/readyz"),
    ):
        env = services[name]["environment"]
        assert env["BRGAN_METRICS_HOST"] == "0.0.0.0", name
        assert f"127.0.0.1:{port}{path}" in " ".join(services[name]["healthcheck"]["test"]), name


def configmap_file(spec: Doc, container: Doc, target: str, tmp_path: Path) -> Path:
    """A copy of the ConfigMap key mounted at ``target`` in this container."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    for mount in container["volumeMounts"]:
        if Path(target).parent == Path(mount["mountPath"]):
            volume = volumes[mount["name"]]
            assert "configMap" in volume, f"{target} is not from a ConfigMap"
            data = find("ConfigMap", volume["configMap"]["name"])["data"]
            copy = tmp_path / Path(target).name
            copy.write_text(data[Path(target).name], encoding="utf-8")
            return copy
    raise AssertionError(f"BRGAN_CONFIG={target} is not mounted")


# -- KEDA watches the Celery queue, on the broker the workers use --------------------------------
def test_keda_watches_the_celery_queue_on_the_workers_broker() -> None:
    scaled = only("ScaledObject")
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    worker = find("Deployment", target["name"])
    assert brgan_argv(main_container(worker))[0] == "worker"
    listener = find("Deployment", "brgan-listener")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    meta = trigger["metadata"]

    assert meta["listName"] == GPU_QUEUE
    url = broker_url(worker)
    assert url.scheme in ("redis", "rediss")
    assert meta["address"] == f"{url.hostname}:{url.port or 6379}"
    assert int(meta.get("databaseIndex", "0")) == int(url.path.lstrip("/") or 0)
    assert (meta.get("enableTLS", "false") == "true") == (url.scheme == "rediss")
    # The coordinator queues on the very broker the workers consume from.
    assert broker_url(listener) == url
    # KEDA logs in with the password the workers put into their URL.
    auth = find("TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    container = main_container(worker)
    assert refs["password"] == secret_of(container, password_variable(worker))
    assert refs["password"] == secret_of(main_container(listener), password_variable(listener))


def test_celery_sends_to_that_list_unprefixed(clean_env: None, tmp_path: Path) -> None:
    """On Redis, kombu keeps a queue as a list of the queue's name: no key prefix, and a
    task without priority goes to the unsuffixed list (priorities would add ``gpu\\x06\\x163``
    and so on, which a list-length trigger would not count)."""
    meta = only("ScaledObject")["spec"]["triggers"][0]["metadata"]
    url = broker_url(find("Deployment", "brgan-worker")).geturl()
    app = make_celery(Settings(data_dir=tmp_path, broker_url=url))
    conf = app.conf
    assert conf.task_default_queue == meta["listName"]
    assert conf.task_routes[ANALYZE_STUDY]["queue"] == meta["listName"]
    assert "global_keyprefix" not in conf.broker_transport_options
    assert conf.task_default_priority is None
    assert not conf.task_queue_max_priority


def test_the_scaling_range_is_documented() -> None:
    spec = only("ScaledObject")["spec"]
    low, high = spec["minReplicaCount"], spec["maxReplicaCount"]
    assert 1 <= low <= high
    assert int(spec["triggers"][0]["metadata"]["listLength"]) >= 1
    text = K8S_README.read_text(encoding="utf-8")
    assert f"between {low} and {high} replicas" in text
    # The HPA owns the worker count: a `replicas:` in the Deployment would reset it on apply.
    assert "replicas" not in find("Deployment", spec["scaleTargetRef"]["name"])["spec"]


def test_the_redis_service_is_the_address_keda_and_the_workers_use() -> None:
    meta = only("ScaledObject")["spec"]["triggers"][0]["metadata"]
    host, port = meta["address"].rsplit(":", 1)
    service = find("Service", host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    redis = find("Deployment", host)
    assert redis["spec"]["replicas"] == 1
    assert redis["spec"]["strategy"]["type"] == "Recreate"
    container = main_container(redis)
    args = container["args"]
    variable = re.fullmatch(r"\$\(([A-Z_]+)\)", args[args.index("--requirepass") + 1])
    assert variable, args
    worker = find("Deployment", "brgan-worker")
    assert secret_of(container, variable.group(1)) == secret_of(
        main_container(worker), password_variable(worker)
    )
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--appendonly") + 1] == "yes"
    claims = [v for v in pod_spec(redis)["volumes"] if "persistentVolumeClaim" in v]
    assert [m["mountPath"] for m in container["volumeMounts"]] == ["/data"] and claims


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_a_queued_study_lands_in_the_list_keda_watches(clean_env: None, tmp_path: Path) -> None:
    """A real redis-server (password on, like the manifests'): the coordinator's send lands in
    the list, database and password KEDA's trigger names, and ``queue_depth`` agrees."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    import redis

    from plugin.queue.app import send_analyze_study

    meta = only("ScaledObject")["spec"]["triggers"][0]["metadata"]
    worker = find("Deployment", "brgan-worker")
    url = broker_url(worker)
    port, password = free_port(), "0123456789abcdef" * 2
    local = url._replace(netloc=f":{password}@127.0.0.1:{port}").geturl()
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--requirepass", password],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    app = None
    try:
        client = redis.Redis(
            host="127.0.0.1", port=port, db=int(meta["databaseIndex"]), password=password
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        settings = Settings(data_dir=tmp_path, broker_url=local)
        app = make_celery(settings)
        send_analyze_study(app, {"schema": 2}, task_id="keda-list-check")
        assert client.llen(meta["listName"]) == 1
        assert queue_depth(settings) == 1
        other = [k for k in client.keys("*") if client.type(k) == b"list"]
        assert other == [meta["listName"].encode()], other
    finally:
        if app is not None:
            app.close()
        server.terminate()
        server.wait(10)


# -- workers: a GPU each, and no study killed on scale-down --------------------------------------
def test_workers_request_one_gpu_and_take_one_task_at_a_time(clean_env: None) -> None:
    worker = find("Deployment", only("ScaledObject")["spec"]["scaleTargetRef"]["name"])
    container = main_container(worker)
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1
    assert resources.get("requests", {}).get("nvidia.com/gpu", 1) == 1
    assert container_env(container)["BRGAN_DEVICE"] == "cuda"
    argv = brgan_argv(container)
    assert argv[argv.index("--concurrency") + 1] == "1"
    # Prefetch 1: a busy worker holds no waiting study out of the list KEDA counts.
    url = broker_url(worker).geturl()
    conf = make_celery(Settings(broker_url=url)).conf
    assert conf.worker_prefetch_multiplier == 1


def test_a_scale_down_lets_the_running_study_finish(clean_env: None) -> None:
    """The choice: a grace period longer than the longest study (Celery's warm shutdown on
    SIGTERM finishes it), with late acknowledgement and the coordinator's lease behind it."""
    worker = find("Deployment", "brgan-worker")
    assert pod_spec(worker)["terminationGracePeriodSeconds"] >= WORKER_GRACE_S
    assert "preStop" not in main_container(worker).get("lifecycle", {})  # SIGTERM goes to Celery
    assert 'ENTRYPOINT ["brgan"]' in DOCKERFILE.read_text(encoding="utf-8")  # exec form: PID 1
    behavior = only("ScaledObject")["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
    scale_down = behavior["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= 300
    service = compose()["services"]["brgan-worker"]
    assert service["stop_signal"] == "SIGTERM"
    assert duration_s(service["stop_grace_period"]) >= WORKER_GRACE_S
    unit = (DEPLOY / "systemd" / "brgan-worker@.service").read_text(encoding="utf-8")
    assert int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE)[1]) >= WORKER_GRACE_S
    # The backstop for a worker killed anyway.
    conf = make_celery(Settings(broker_url="redis://brgan-redis:6379/0")).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    settings = Settings()
    assert settings.worker_heartbeat < settings.worker_lease < WORKER_GRACE_S


# -- the listener: one replica, its index and spool on volumes -----------------------------------
def test_the_listener_is_one_replica_with_its_spool_on_a_pvc(
    clean_env: None, tmp_path: Path
) -> None:
    listener = find("Deployment", "brgan-listener")
    assert listener["spec"]["replicas"] == 1
    assert listener["spec"]["strategy"]["type"] == "Recreate"
    assert "brgan-listener" not in {
        d["spec"]["scaleTargetRef"]["name"] for _, d in k8s_docs() if d["kind"] == "ScaledObject"
    }
    spec, container = pod_spec(listener), main_container(listener)
    assert brgan_argv(container) == ["serve"]
    toml = configmap_file(spec, container, container_env(container)["BRGAN_CONFIG"], tmp_path)
    settings = load_settings(toml)
    claims = {
        v["name"]: find("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    }

    def claim_of(path: Path) -> Doc:
        mounts = [m for m in container["volumeMounts"] if m["name"] in claims]
        best = max(
            (m for m in mounts if path.is_relative_to(m["mountPath"])),
            key=lambda m: len(m["mountPath"]),
            default=None,
        )
        assert best is not None and not best.get("readOnly"), f"{path} is not on a writable PVC"
        return claims[best["name"]]

    assert claim_of(settings.index_path)["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim_of(settings.spool_path)["spec"]["accessModes"] == ["ReadWriteMany"]


# -- docker compose: a GPU reservation, and --scale ----------------------------------------------
def test_compose_worker_reserves_a_gpu_and_scales() -> None:
    services = compose()["services"]
    workers = [n for n, s in services.items() if (compose_argv(s) or [""])[0] == "worker"]
    assert workers == ["brgan-worker"]
    worker = services["brgan-worker"]
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert worker["environment"]["BRGAN_DEVICE"] == "cuda"
    # `--scale` needs replicas that can coexist: no fixed name, no published host port.
    assert "container_name" not in worker and "ports" not in worker
    assert "hostname" not in worker  # Celery node names stay unique (they use the hostname)
    listener = services["brgan-listener"]
    assert worker["environment"]["BRGAN_BROKER_URL"] == listener["environment"]["BRGAN_BROKER_URL"]
    assert urlsplit(worker["environment"]["BRGAN_BROKER_URL"]).hostname in services
    text = COMPOSE.read_text(encoding="utf-8")
    assert "docker compose up -d --scale brgan-worker=N" in text
