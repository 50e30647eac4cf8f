"""The files under ``deploy/`` stay loadable and consistent with each other and with the code.

Docker is not available where the suite runs, so the Dockerfile and compose file are checked by
reading them: every path they name exists, volumes and users are as documented. The example
settings file is loaded with the real settings loader, systemd units go through
``systemd-analyze verify`` when it is installed.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from plugin.config import Settings, load_settings
from tests.deploy.orthanc import ORTHANC_CONFIG, ROUTING_LUA, load_orthanc_config

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
EXAMPLE_TOML = DEPLOY / "brgan.example.toml"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
LISTENER_UNIT = DEPLOY / "systemd" / "brgan-listener.service"
WORKER_UNIT = DEPLOY / "systemd" / "brgan-worker@.service"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BRGAN_* variable of the caller's shell leaks into the settings under test."""
    import os

    for name in list(os.environ):
        if name.startswith("BRGAN_"):
            monkeypatch.delenv(name)


# -- example settings --------------------------------------------------------------------------
def test_example_settings_load(clean_env: None) -> None:
    settings = load_settings(EXAMPLE_TOML)

    assert settings.data_dir == Path("/var/lib/brgan")
    assert settings.allowed_calling_aets == ["ORTHANC"]
    assert settings.broker_url is not None
    assert not settings.embedded


def test_example_names_and_explains_every_setting() -> None:
    lines = EXAMPLE_TOML.read_text(encoding="utf-8").splitlines()
    key_line = re.compile(r"^#?\s*([a-z_]+)\s*=")
    documented: dict[str, int] = {}
    for number, line in enumerate(lines):
        match = key_line.match(line)
        if match and match.group(1) in Settings.model_fields:
            documented[match.group(1)] = number
    missing = sorted(set(Settings.model_fields) - set(documented))
    assert not missing, f"deploy/brgan.example.toml does not mention: {missing}"
    for key, number in documented.items():
        above = lines[number - 1]
        assert above.startswith("# ") and not key_line.match(above), (
            f"{key} in deploy/brgan.example.toml has no comment line above it"
        )


# -- Orthanc -----------------------------------------------------------------------------------
def test_orthanc_config_routes_to_the_listener(clean_env: None) -> None:
    config = load_orthanc_config()
    settings = load_settings(EXAMPLE_TOML)
    brgan = config["DicomModalities"]["brgan"]

    assert brgan["AET"] == settings.ae_title
    assert brgan["Port"] == settings.port
    assert brgan["AllowStore"] is True  # results come back from AE BRGAN
    assert config["DicomAet"] in settings.allowed_calling_aets
    assert config["DicomAlwaysAllowStore"] is False
    assert config["StableAge"] > 0
    assert [Path(p).name for p in config["LuaScripts"]] == [ROUTING_LUA.name]
    assert config["Plugins"] == ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"]
    assert config["DicomWeb"] == {"Enable": True, "Root": "/dicom-web/"}
    assert 1024 <= config["UserMetadata"]["BrganRouted"] <= 65535


def test_index_lock_refusal_reaches_orthanc_before_its_dimse_timeout(clean_env: None) -> None:
    """An instance refused 0xA700 after ``index_busy_timeout`` must be refused while Orthanc
    still waits for the answer; past ``DicomScuTimeout`` (Orthanc's default: 10 s) Orthanc
    aborts the association instead and never hears why."""
    scu_timeout = load_orthanc_config().get("DicomScuTimeout", 10)
    for settings in (Settings(), load_settings(EXAMPLE_TOML)):
        assert settings.index_busy_timeout < scu_timeout


def test_lua_uses_the_names_the_config_declares() -> None:
    lua = ROUTING_LUA.read_text(encoding="utf-8")
    config = load_orthanc_config()

    def constant(name: str) -> str:
        match = re.search(rf"^local {name} = '([^']+)'$", lua, re.MULTILINE)
        assert match, f"{ROUTING_LUA.name} lacks `local {name} = '...'`"
        return match.group(1)

    assert constant("BRGAN_MODALITY") in config["DicomModalities"]
    assert constant("ROUTED_METADATA") in config["UserMetadata"]
    assert constant("BRGAN_MANUFACTURER") == "brgan-pacs"
    assert "function OnStableStudy(studyId, tags, metadata)" in lua


def test_orthanc_image_loads_the_config_as_one_file() -> None:
    text = (DEPLOY / "orthanc" / "Dockerfile").read_text(encoding="utf-8")
    assert "orthanc-dicomweb" in text
    assert 'CMD ["/etc/orthanc/orthanc.json"]' in text
    assert ORTHANC_CONFIG.is_file()


# -- systemd -----------------------------------------------------------------------------------
def unit_values(path: Path) -> dict[str, list[str]]:
    """``Key -> [values]`` over all sections (systemd allows repeated keys)."""
    values: dict[str, list[str]] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_listener_unit_runs_brgan_serve() -> None:
    unit = unit_values(LISTENER_UNIT)
    assert unit["ExecStart"] == ["/opt/brgan/venv/bin/brgan serve"]
    assert "BRGAN_CONFIG=/etc/brgan/brgan.toml" in unit["Environment"]
    assert unit["User"] == ["brgan"]
    assert unit["KillSignal"] == ["SIGTERM"]


def test_worker_unit_is_one_gpu_per_instance() -> None:
    unit = unit_values(WORKER_UNIT)
    assert unit["ExecStart"][0].startswith("/opt/brgan/venv/bin/brgan worker")
    assert "CUDA_VISIBLE_DEVICES=%i" in unit["Environment"]
    assert "BRGAN_CONFIG=/etc/brgan/brgan.toml" in unit["Environment"]
    assert unit["ReadOnlyPaths"] == ["/var/lib/brgan"]
    assert unit["ReadWritePaths"] == ["/var/lib/brgan/results"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
@pytest.mark.parametrize("unit", [LISTENER_UNIT, WORKER_UNIT], ids=lambda p: p.name)
def test_units_pass_systemd_analyze(unit: Path, tmp_path: Path) -> None:
    brgan = shutil.which("brgan") or str(Path(REPO_ROOT / ".venv" / "bin" / "brgan"))
    if not Path(brgan).is_file():
        pytest.skip("no brgan executable to stand in for /opt/brgan/venv/bin/brgan")
    name = unit.name.replace("@.", "@0.")  # verify a template through one instance
    copy = tmp_path / name
    copy.write_text(
        unit.read_text(encoding="utf-8").replace("/opt/brgan/venv/bin/brgan", brgan),
        encoding="utf-8",
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", (
        result.stdout + result.stderr
    )


# -- Docker ------------------------------------------------------------------------------------
def test_dockerfile_installs_with_constraints_and_runs_unprivileged() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert "-c constraints.txt torch torchvision" in text
    assert "-c constraints.txt ." in text
    assert re.search(r"^USER brgan$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["brgan"]' in text
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(REPO_ROOT / "setup.cfg")
    assert "brgan = plugin.cli.main:main" in setup_cfg["options.entry_points"]["console_scripts"]


def test_dockerfile_copies_what_exists_and_the_ignore_file_lets_in() -> None:
    sources = dockerfile_sources()
    assert sources, "no COPY lines in deploy/Dockerfile"
    included = {
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"deploy/Dockerfile copies missing {source}"
        assert source in included, f"{DOCKERIGNORE.name} keeps {source} out of the context"


def dockerfile_sources() -> list[str]:
    sources: list[str] = []
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY "):
            sources += [s for s in line.split()[1:-1] if not s.startswith("--")]
    return sources


def test_the_build_context_is_enough_to_build_the_package(tmp_path: Path) -> None:
    """What the Dockerfile copies builds a wheel with the ``brgan`` command (offline)."""
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    import sys
    import zipfile

    context = tmp_path / "context"
    context.mkdir()
    for source in dockerfile_sources():
        src = REPO_ROOT / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, context / source)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("brgan_pacs-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "brgan = plugin.cli.main:main" in archive.read(entry_points).decode()
    assert {"plugin/cli/main.py", "plugin/py.typed", "brgan_core/__init__.py"} <= names


def compose_host_paths(text: str) -> list[str]:
    """Relative host paths the compose file names: bind mounts and build contexts."""
    paths = re.findall(r"^\s*-\s*\"?(\.{1,2}/[^:\"]+):", text, re.MULTILINE)
    paths += re.findall(r"^\s*context:\s*(\S+)\s*$", text, re.MULTILINE)
    return paths


def test_compose_names_paths_that_exist() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    paths = compose_host_paths(text)
    assert {"./orthanc/orthanc.json", "./orthanc/route-mammo.lua", ".."} <= set(paths)
    for path in paths:
        assert (DEPLOY / path).exists(), f"docker-compose.yml names missing {path}"
    contexts = re.findall(r"context:\s*(\S+)\s*\n\s*dockerfile:\s*(\S+)", text, re.MULTILINE)
    assert contexts
    for context, dockerfile in contexts:
        assert (DEPLOY / context / dockerfile).is_file(), f"{context}/{dockerfile} missing"


def test_compose_structure() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed in this environment")
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) >= {"redis", "orthanc", "brgan-listener", "brgan-worker"}
    declared = set(compose["volumes"])
    mounts: dict[str, dict[str, str]] = {}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target, *mode = volume.split(":")
            if not source.startswith("."):
                assert source in declared, f"{name} mounts undeclared volume {source}"
            mounts.setdefault(name, {})[target] = mode[0] if mode else "rw"
    worker, listener = mounts["brgan-worker"], mounts["brgan-listener"]
    assert worker["/var/lib/brgan/spool"] == "ro"
    assert worker["/var/lib/brgan/models"] == "ro"
    assert worker["/var/lib/brgan/results"] == "rw"
    assert set(worker) <= set(listener), "workers must see the listener's paths"
    assert services["brgan-listener"]["network_mode"] == "service:orthanc"


# -- Kubernetes --------------------------------------------------------------------------------
K8S = DEPLOY / "k8s" / "brgan.yaml"


def configmap_toml(text: str) -> str:
    """The ``brgan.toml: |`` block of the ConfigMap, dedented."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "brgan.toml: |") + 1
    block: list[str] = []
    for line in lines[start:]:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block) + "\n"


def test_k8s_config_loads_and_its_paths_are_mounted(clean_env: None, tmp_path: Path) -> None:
    text = K8S.read_text(encoding="utf-8")
    toml = tmp_path / "brgan.toml"
    toml.write_text(configmap_toml(text), encoding="utf-8")

    settings = load_settings(toml)

    mounts = set(re.findall(r"mountPath:\s*([^,}\s]+)", text))
    assert str(settings.data_dir) in mounts
    for path in (settings.spool_path, settings.results_path, settings.registry_path):
        assert str(path) in mounts or str(path.parent) in mounts, f"{path} is not mounted"
    assert "ReadWriteMany" in text


def test_k8s_workers_mount_spool_and_models_read_only() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed in this environment")
    docs = list(yaml.safe_load_all(K8S.read_text(encoding="utf-8")))
    worker = next(d for d in docs if d["metadata"]["name"] == "brgan-worker")
    container = worker["spec"]["template"]["spec"]["containers"][0]
    modes = {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]}
    assert modes["/srv/brgan-shared/spool"] is True
    assert modes["/srv/brgan-shared/models"] is True
    assert modes["/srv/brgan-shared/results"] is False
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    listener = next(d for d in docs if d["metadata"]["name"] == "brgan-listener")
    assert listener["spec"]["replicas"] == 1
    assert listener["spec"]["strategy"]["type"] == "Recreate"


# -- BRGAN_* environment variables in every deploy file ------------------------------------------
def brgan_env(path: Path) -> list[tuple[str, str]]:
    """``(NAME, value)`` of every BRGAN_* variable a deploy file sets."""
    text = path.read_text(encoding="utf-8")
    pairs = re.findall(r"^\s*(BRGAN_[A-Z_]+):\s*(.+?)\s*$", text, re.MULTILINE)  # compose
    pairs += re.findall(r"^Environment=(BRGAN_[A-Z_]+)=(.*)$", text, re.MULTILINE)  # systemd
    pairs += re.findall(r"\{name: (BRGAN_[A-Z_]+), value: ([^}]+)\}", text)  # kubernetes
    return [(name, value.strip().strip("'\"")) for name, value in pairs]


@pytest.mark.parametrize(
    "path",
    [COMPOSE, LISTENER_UNIT, WORKER_UNIT, DOCKERFILE, *sorted(K8S.parent.glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_environment_names_real_settings(
    path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = path.read_text(encoding="utf-8")
    named = set(re.findall(r"\b(BRGAN_[A-Z_]+)\b", text))
    known = {f"BRGAN_{field.upper()}" for field in Settings.model_fields} | {"BRGAN_CONFIG"}
    assert named <= known, f"{path.name} names unknown variables: {sorted(named - known)}"
    for name, value in brgan_env(path):
        if name != "BRGAN_CONFIG":
            monkeypatch.setenv(name, value)
    load_settings()  # every value parses (lists as JSON, booleans, enums)
