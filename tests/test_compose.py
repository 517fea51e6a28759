"""docker-compose.yml and Dockerfile: valid for the Compose schema, and wired as the README promises.

No Docker engine runs here, so `docker compose config` is replaced by the Compose JSON schema
(../shared/compose-spec) plus checks of what the schema cannot know: health checks, start order, the image.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_SCHEMA = ROOT.parent / "shared" / "compose-spec" / "compose-spec.json"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def test_valid_for_the_compose_schema(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    problems = [f"{error.json_path}: {error.message}" for error in Draft7Validator(schema).iter_errors(compose)]
    assert not problems, "\n".join(problems)


def test_the_schema_check_can_fail(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    broken = {**compose, "services": {**compose["services"], "redis": {**compose["services"]["redis"],
                                                                        "helthcheck": {}}}}
    assert not Draft7Validator(schema).is_valid(broken)


ENGINES = {"opensearch": {"opensearch", "dashboards"}, "elasticsearch": {"elasticsearch", "kibana"}}
"""Each profile: the engine and the UI it starts."""


def test_the_services(services: dict[str, Any]) -> None:
    assert set(services) == {"opensearch", "dashboards", "elasticsearch", "kibana", "redis", "rabbitmq",
                             "neurank-init", "neurank-worker", "neurank-worker-gpu", "serve"}
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]


def started(services: dict[str, Any], profile: str) -> set[str]:
    """The services `COMPOSE_PROFILES=<profile> docker compose up` starts: no profile, or that one."""
    return {name for name, service in services.items() if profile in service.get("profiles", [profile])}


@pytest.mark.parametrize("profile", list(ENGINES))
def test_each_profile_starts_one_engine_with_its_ui_and_the_same_neurank_services(
        services: dict[str, Any], profile: str) -> None:
    assert started(services, profile) == ENGINES[profile] | {"redis", "neurank-init", "neurank-worker"}
    engine = next(name for name in ENGINES[profile] if "healthcheck" in services[name])
    assert services[engine]["networks"]["default"]["aliases"] == ["search"]
    assert services[engine]["ports"] == ["127.0.0.1:9200:9200"]


def test_the_default_profile_is_opensearch() -> None:
    """Compose reads COMPOSE_PROFILES from .env beside the file; the shell's value wins over it."""
    lines = [line for line in (ROOT / ".env").read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    assert lines == ["COMPOSE_PROFILES=opensearch"]


@pytest.mark.parametrize(
    ("engine", "image", "heap", "security_off"),
    [
        ("opensearch", r"opensearchproject/opensearch:\$\{OPENSEARCH_VERSION:-3\.\d+\.\d+\}", "OPENSEARCH_JAVA_OPTS",
         {"DISABLE_SECURITY_PLUGIN": "true"}),
        # Elasticsearch 8.x / 9.x turn security on by default; off here, on the Basic licence
        ("elasticsearch",
         r"docker\.elastic\.co/elasticsearch/elasticsearch:\$\{ELASTIC_VERSION:-(8|9)\.\d+\.\d+\}",
         "ES_JAVA_OPTS", {"xpack.security.enabled": "false", "xpack.license.self_generated.type": "basic"}),
    ],
)
def test_each_engine_is_a_local_single_node(compose: dict[str, Any], services: dict[str, Any], engine: str,
                                            image: str, heap: str, security_off: dict[str, str]) -> None:
    service = services[engine]
    assert re.fullmatch(image, service["image"])
    environment = service["environment"]
    assert environment["discovery.type"] == "single-node"
    assert security_off.items() <= environment.items()
    assert "-Xms" in environment[heap] and "-Xmx" in environment[heap]
    assert service["ulimits"]["memlock"] == {"soft": -1, "hard": -1}
    (volume,) = service["volumes"]
    assert volume.split(":")[0] in compose["volumes"]
    assert all(port.startswith("127.0.0.1:") for other in services.values() for port in other.get("ports", ()))


def test_health_checks(services: dict[str, Any]) -> None:
    for engine in ("opensearch", "elasticsearch"):
        assert "_cluster/health?wait_for_status=yellow" in " ".join(services[engine]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["rabbitmq"]["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]


@pytest.mark.parametrize(
    ("service", "needs"),
    [
        ("dashboards", {"opensearch"}),
        ("kibana", {"elasticsearch"}),
        ("neurank-init", {"opensearch", "elasticsearch"}),
        ("neurank-worker", {"opensearch", "elasticsearch", "redis", "rabbitmq"}),
        ("serve", {"opensearch", "elasticsearch"}),
    ],
)
def test_services_wait_for_healthy_dependencies(services: dict[str, Any], service: str, needs: set[str]) -> None:
    depends_on = services[service]["depends_on"]
    assert set(depends_on) == needs
    assert all(depends_on[name]["condition"] == "service_healthy" for name in needs)
    # Only the profiles' services may be absent (Compose then starts the service without them).
    assert {name for name in needs if depends_on[name].get("required", True) is False} <= {*ENGINES, "rabbitmq"}


def test_neurank_waits_for_whichever_engine_the_profile_started(services: dict[str, Any]) -> None:
    for service in ("neurank-init", "neurank-worker", "serve"):
        depends_on = services[service]["depends_on"]
        assert {name for name, dep in depends_on.items() if dep.get("required") is False} - {"rabbitmq"} == set(ENGINES)
    assert "required" not in services["neurank-worker"]["depends_on"]["redis"]  # the broker is always needed


def test_dashboards_point_at_the_cluster(services: dict[str, Any]) -> None:
    assert json.loads(services["dashboards"]["environment"]["OPENSEARCH_HOSTS"]) == ["http://opensearch:9200"]


def test_kibana_points_at_elasticsearch_in_the_same_version(services: dict[str, Any]) -> None:
    kibana = services["kibana"]
    assert kibana["environment"]["ELASTICSEARCH_HOSTS"] == "http://elasticsearch:9200"
    assert kibana["image"].rpartition(":")[2] == services["elasticsearch"]["image"].rpartition(":")[2]
    assert kibana["ports"] == ["127.0.0.1:5601:5601"]


def test_worker_and_init_run_neurank_against_the_cluster(services: dict[str, Any]) -> None:
    worker, init = services["neurank-worker"], services["neurank-init"]
    assert worker["command"] == ["neurank", "worker"]
    assert init["command"] == ["neurank", "index", "create"]
    assert init["restart"] == "no"
    for service in (worker, init):
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
        assert service["environment"]["NEURANK_BROKER_URL"] == "${NEURANK_BROKER_URL:-redis://redis:6379/0}"
        assert service["environment"]["NEURANK_LEDGER_URL"] == "redis://redis:6379/0"
        assert service["environment"]["NEURANK_STORE"] == "http://search:9200"
        assert "profiles" not in service


def test_dockerfile_installs_cpu_torch_before_the_package() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    torch = next(i for i, line in enumerate(lines) if "torch==" in line)
    package = next(i for i, line in enumerate(lines) if line.startswith('RUN pip install ".['))
    extras = set(lines[package].split("[", 1)[1].split("]", 1)[0].split(","))
    assert {"opensearch", "celery", "serve"} <= extras
    assert "--index-url ${TORCH_INDEX} torch==2.13.0" in lines[torch]
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in lines[:torch]  # CPU unless asked otherwise
    assert "ARG GPU=false" in lines
    assert torch < package


def test_the_gpu_worker_is_the_worker_on_cuda_with_a_gpu_image(services: dict[str, Any]) -> None:
    worker, gpu = services["neurank-worker"], services["neurank-worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["command"] == worker["command"]
    assert gpu["depends_on"] == worker["depends_on"] and gpu["restart"] == worker["restart"]
    assert gpu["environment"] == {**worker["environment"], "NEURANK_DEVICE": "cuda"}
    assert gpu["build"]["args"] == {"TORCH_INDEX": "${NEURANK_TORCH_INDEX_CUDA:-https://download.pytorch.org/whl/cu130}",
                                    "GPU": "true"}
    assert gpu["image"] != worker["image"]  # the CPU image is not overwritten by the GPU build
    assert gpu["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_serve_listens_for_the_host_with_an_api_key(services: dict[str, Any]) -> None:
    """Inside the container it binds 0.0.0.0, which `neurank serve` refuses without a key."""
    serve = services["serve"]
    assert serve["command"] == ["neurank", "serve", "--store", "http://search:9200", "--host", "0.0.0.0",
                                "--port", "8000"]
    assert serve["environment"]["NEURANK_SERVE_API_KEY"] == "${NEURANK_SERVE_API_KEY:-}"
    assert serve["profiles"] == ["serve"], "opt-in: the default `docker compose up` needs no key"
    assert serve["ports"] == ["127.0.0.1:8000:8000"]
    assert "/readyz" in " ".join(serve["healthcheck"]["test"])
    assert serve["build"] == {"context": ".", "dockerfile": "Dockerfile"}
