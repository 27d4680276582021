"""docker-compose.yml, the Dockerfile and the Makefile's system dependencies (no Docker daemon needed)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from optirec.service.settings import Settings
from optirec.service.trials.ray_address import parse_ray_address

ENV_PREFIX = "OPTIREC_"
PORT = 8000


@pytest.fixture(scope="module")
def compose(repo_root: Path) -> dict[str, Any]:
    document = yaml.safe_load((repo_root / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def dockerfile(repo_root: Path) -> str:
    return (repo_root / "Dockerfile").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "- NAME=value" form
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> source (volume name or host path) of a service's volumes."""
    mounts = {}
    for item in service.get("volumes") or []:
        if isinstance(item, str):
            source, target = item.split(":")[:2]
        else:
            source, target = item.get("source", ""), item["target"]
        mounts[target.rstrip("/") or "/"] = source
    return mounts


def test_docker_compose_validates(repo_root: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (make test installs Debian's docker-compose when run as root)")
    result = subprocess.run(
        [binary, "-f", "docker-compose.yml", "config", "-q"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "OPTIREC_API_KEY": ""},
    )
    assert result.returncode == 0, f"docker-compose config -q failed:\n{result.stderr}"


def test_api_service_has_a_healthcheck_on_healthz(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    check = api["healthcheck"]
    test = check["test"]
    command = " ".join(test) if isinstance(test, list) else test
    assert f":{PORT}/healthz" in command
    assert "curl" not in command and "wget" not in command  # neither is in python:3.11-slim
    assert api["build"] in (".", {"context": "."}) or api["build"].get("context") == "."
    assert f"127.0.0.1:{PORT}:{PORT}" in [str(p) for p in api["ports"]]  # published on the host's loopback only


def test_trial_store_lives_on_a_named_volume(compose: dict[str, Any]) -> None:
    for name in ("api", "api-gpu", "api-ray"):
        service = compose["services"][name]
        store = _environment(service)[f"{ENV_PREFIX}TRIAL_STORE"]
        folder = str(PurePosixPath(store).parent)
        mounts = _mounts(service)
        assert folder in mounts, f"{name}: no volume mounted at {folder} (the trial store's folder); mounts: {mounts}"
        assert mounts[folder] in (compose.get("volumes") or {}), f"{name}: {mounts[folder]!r} is not a named volume"


@pytest.mark.parametrize("service", ["api", "api-gpu", "api-ray"])
def test_environment_names_are_settings_fields(compose: dict[str, Any], service: str) -> None:
    env = _environment(compose["services"][service])
    assert env, f"{service} sets no environment"
    for name in env:
        if name.startswith("RAY_"):  # Ray's own (its token), read by the Ray driver the API starts
            continue
        assert name.startswith(ENV_PREFIX), f"{service}: {name} lacks the {ENV_PREFIX} prefix of Settings"
        field = name.removeprefix(ENV_PREFIX).lower()
        assert field in Settings.model_fields, (
            f"{service}: {name} is not a Settings field (fields: {sorted(Settings.model_fields)})"
        )
    assert env[f"{ENV_PREFIX}HOST"] == "0.0.0.0"
    assert env[f"{ENV_PREFIX}API_KEY"] == "${OPTIREC_API_KEY:-}"


def test_environment_values_are_valid_settings(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The container's Settings, read from the compose environment as the service reads it."""
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in _environment(compose["services"]["api"]).items():
        if not value.startswith("$"):  # ${...} is the host's value, tested on its own
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.host == "0.0.0.0"
    assert settings.port == PORT
    assert getattr(settings, "trial_store", None) == "/data/trials.sqlite3"


def test_gpu_profile_reserves_an_nvidia_device(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["api-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and d["count"] == 1 and "gpu" in d["capabilities"] for d in devices), devices
    assert "profiles" not in compose["services"]["api"], "the CPU service must start without a profile"


def test_dockerfile_pins_torch_through_the_constraints(repo_root: Path, instructions: list[tuple[str, str]]) -> None:
    pin = next(
        line.strip() for line in (repo_root / "constraints.txt").read_text().splitlines() if line.startswith("torch==")
    )
    runs = [args for kind, args in instructions if kind == "RUN"]
    torch_step = next(i for i, args in enumerate(runs) if f'"{pin}"' in args or f" {pin}" in args)
    package_step = next(i for i, args in enumerate(runs) if ".[${EXTRAS}]" in args)
    assert torch_step < package_step, "torch must be installed before the package"
    for step in (torch_step, package_step):
        assert "-c constraints.txt" in runs[step], runs[step]
    assert ("ARG", "EXTRAS=torch") in instructions  # the default image's extras: torch only
    assert ("FROM", "${PYTHON_IMAGE} AS build") in instructions
    assert any(kind == "ARG" and args == "PYTHON_IMAGE=python:3.11-slim" for kind, args in instructions)


def test_dockerfile_runs_the_service_as_a_non_root_user(instructions: list[tuple[str, str]]) -> None:
    users = [args for kind, args in instructions if kind == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    cmd = [args for kind, args in instructions if kind == "CMD"][-1]
    assert yaml.safe_load(cmd) == ["optirec", "serve", "--host", "0.0.0.0", "--port", str(PORT)]
    health = [args for kind, args in instructions if kind == "HEALTHCHECK"][-1]
    assert f"127.0.0.1:{PORT}/healthz" in health and "urllib" in health
    assert ("EXPOSE", str(PORT)) in instructions
    env = " ".join(args for kind, args in instructions if kind == "ENV")
    assert f"{ENV_PREFIX}TRIAL_STORE=/data/" in env
    assert any(kind == "VOLUME" and "/data" in args for kind, args in instructions)
    for word in shlex.split(env):
        if word.startswith(ENV_PREFIX):
            field = word.partition("=")[0].removeprefix(ENV_PREFIX).lower()
            assert field in Settings.model_fields, f"Dockerfile ENV {word} is not a Settings field"


def test_make_test_installs_docker_compose_on_a_fresh_machine(repo_root: Path) -> None:
    makefile = (repo_root / "Makefile").read_text(encoding="utf-8")
    test_rule = re.search(r"^test:([^\n]*)\n((?:\t[^\n]*\n)*)", makefile, re.M)
    assert test_rule, "the Makefile has no test target"
    assert "system-deps" in test_rule.group(1).split() or "system-deps" in test_rule.group(2), (
        "make test must run the system-deps target"
    )
    assert re.search(r"^system-deps:", makefile, re.M), "the Makefile has no system-deps target"
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed: cannot expand the system-deps recipe")
    dry = subprocess.run(
        [make, "-n", "-s", "system-deps"], cwd=repo_root, capture_output=True, text=True, timeout=60, check=False
    )
    assert dry.returncode == 0, dry.stderr
    assert "apt-get" in dry.stdout and "docker-compose" in dry.stdout, dry.stdout


def test_compose_default_api_key_means_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-compose passes ``OPTIREC_API_KEY=""`` when the host has none: that must mean "no key", not ""."""
    monkeypatch.setenv(f"{ENV_PREFIX}API_KEY", "")
    assert Settings().api_key is None


RAY_SERVICES = ("ray-head", "ray-worker", "ray-gpu-worker")


def _command(service: dict[str, Any]) -> str:
    command = service["command"]
    return " ".join(command) if isinstance(command, list) else str(command)


def test_ray_profile_points_the_api_at_its_head(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api, head, worker = services["api-ray"], services["ray-head"], services["ray-worker"]
    for name in ("api-ray", "ray-head", "ray-worker"):
        assert services[name]["profiles"] == ["ray"], name
    env = _environment(api)
    assert env[f"{ENV_PREFIX}TRIAL_BACKEND"] == "ray"
    assert "ray" in Settings.model_fields["trial_backend"].annotation.__args__  # type: ignore[union-attr]
    address = parse_ray_address(env[f"{ENV_PREFIX}RAY_ADDRESS"])
    assert (address.kind, address.host) == ("gcs", "ray-head")
    head_cmd = _command(head)
    assert "ray start --head" in head_cmd and f"--port={address.port}" in head_cmd and "--block" in head_cmd
    assert "--include-dashboard=false" in head_cmd and "--disable-usage-stats" in head_cmd
    assert f"--address=ray-head:{address.port}" in _command(worker) and "--block" in _command(worker)
    assert api["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert f"'127.0.0.1', {address.port})" in " ".join(head["healthcheck"]["test"])
    assert "ports" not in head and "ports" not in worker  # Ray's ports stay on the compose network
    assert "127.0.0.1:8002:8000" in [str(p) for p in api["ports"]]


@pytest.mark.parametrize("service", ["api-ray", *RAY_SERVICES])
def test_ray_images_have_the_ray_extra(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    assert "ray" in spec["build"]["args"]["EXTRAS"].split(","), spec["build"]
    assert "torch" in spec["build"]["args"]["EXTRAS"].split(",")
    if service in RAY_SERVICES:
        assert spec["shm_size"], f"{service}: Ray's object store needs more than the default 64 MB of /dev/shm"
        env = _environment(spec)
        assert env["RAY_USAGE_STATS_ENABLED"] == "0" and env["RAY_AUTH_MODE"] == "${RAY_AUTH_MODE:-disabled}"


def test_the_gpu_profile_has_a_ray_gpu_worker(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["ray-gpu-worker"]
    assert gpu["profiles"] == ["gpu"]
    assert "--num-gpus=1" in _command(gpu) and "--address=ray-head:" in _command(gpu)
    assert gpu["build"]["args"]["TORCH_INDEX_URL"] == "https://pypi.org/simple"  # a CUDA build of torch
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and d["count"] == 1 and "gpu" in d["capabilities"] for d in devices), devices
