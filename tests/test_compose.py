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


def test_the_services(services: dict[str, Any]) -> None:
    assert set(services) == {"opensearch", "dashboards", "redis", "rabbitmq", "neurank-init", "neurank-worker"}
    assert [name for name, service in services.items() if "profiles" in service] == ["rabbitmq"]
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]


def test_opensearch_is_a_local_single_node_3x(compose: dict[str, Any], services: dict[str, Any]) -> None:
    opensearch = services["opensearch"]
    assert re.fullmatch(r"opensearchproject/opensearch:\$\{OPENSEARCH_VERSION:-3\.\d+\.\d+\}", opensearch["image"])
    environment = opensearch["environment"]
    assert environment["discovery.type"] == "single-node"
    assert environment["DISABLE_SECURITY_PLUGIN"] == "true"
    assert "-Xms" in environment["OPENSEARCH_JAVA_OPTS"] and "-Xmx" in environment["OPENSEARCH_JAVA_OPTS"]
    assert opensearch["ulimits"]["memlock"] == {"soft": -1, "hard": -1}
    (volume,) = opensearch["volumes"]
    assert volume.split(":")[0] in compose["volumes"]
    assert all(port.startswith("127.0.0.1:") for service in services.values() for port in service.get("ports", ()))


def test_health_checks(services: dict[str, Any]) -> None:
    assert "_cluster/health" in " ".join(services["opensearch"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["rabbitmq"]["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]


@pytest.mark.parametrize(
    ("service", "needs"),
    [
        ("dashboards", {"opensearch"}),
        ("neurank-init", {"opensearch"}),
        ("neurank-worker", {"opensearch", "redis", "rabbitmq"}),
    ],
)
def test_services_wait_for_healthy_dependencies(services: dict[str, Any], service: str, needs: set[str]) -> None:
    depends_on = services[service]["depends_on"]
    assert set(depends_on) == needs
    assert all(depends_on[name]["condition"] == "service_healthy" for name in needs)
    # Only the broker of the rabbitmq profile may be absent (Compose then starts the worker without it).
    assert {name for name in needs if depends_on[name].get("required", True) is False} <= {"rabbitmq"}


def test_dashboards_point_at_the_cluster(services: dict[str, Any]) -> None:
    assert json.loads(services["dashboards"]["environment"]["OPENSEARCH_HOSTS"]) == ["http://opensearch:9200"]


def test_worker_and_init_run_neurank_against_the_cluster(services: dict[str, Any]) -> None:
    worker, init = services["neurank-worker"], services["neurank-init"]
    assert worker["command"] == ["neurank", "worker", "--store", "http://opensearch:9200"]
    assert init["command"] == ["neurank", "index", "create", "--store", "http://opensearch:9200"]
    assert init["restart"] == "no"
    for service in (worker, init):
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
        assert service["environment"]["NEURANK_BROKER_URL"] == "${NEURANK_BROKER_URL:-redis://redis:6379/0}"
        assert service["environment"]["NEURANK_LEDGER_URL"] == "redis://redis:6379/0"


def test_dockerfile_installs_cpu_torch_before_the_package() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    torch = next(i for i, line in enumerate(lines) if "torch==" in line)
    package = next(i for i, line in enumerate(lines) if "pip install" in line and "[opensearch,celery]" in line)
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in lines[torch]
    assert torch < package
