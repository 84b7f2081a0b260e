"""docker-compose.yml runs the same topology as the native dev stack (structure only: no
Docker engine exists on our machines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from clients.devstack.services import Ports

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def published(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split(":")[0]) for p in service.get("ports", [])}


def test_every_part_of_the_topology_is_there() -> None:
    services = compose()["services"]
    assert set(services) >= {"kafka", "cassandra", "neo4j", "redis", "flink-jobmanager",
                             "flink-taskmanager", "flink-job", "gateway"}


def test_same_ports_as_the_native_dev_stack() -> None:
    services, ports = compose()["services"], Ports()
    assert ports.kafka in published(services["kafka"])
    assert ports.cassandra in published(services["cassandra"])
    assert {ports.neo4j_bolt, ports.neo4j_http} <= published(services["neo4j"])
    assert ports.redis in published(services["redis"])
    assert 8000 in published(services["gateway"])


def test_images_are_pinned_and_stores_are_health_checked() -> None:
    services = compose()["services"]
    for name, svc in services.items():
        image = svc.get("image", "")
        assert ":" in image, name
        assert not image.endswith(":latest"), name
    for name in ("kafka", "cassandra", "neo4j", "redis", "gateway"):
        assert "healthcheck" in services[name], name
    needs = services["gateway"]["depends_on"]
    assert all(needs[s]["condition"] == "service_healthy"
               for s in ("kafka", "cassandra", "neo4j", "redis"))


def test_build_contexts_exist() -> None:
    for svc in compose()["services"].values():
        build = svc.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()


def test_the_flink_image_holds_every_package_the_job_imports() -> None:
    """The stores sink imports ``storage`` and ``graph`` on the task managers: an image
    with ``stream`` alone fails with ModuleNotFoundError once the job runs."""
    from stream.flink.job import JOB_PACKAGES

    dockerfile = (ROOT / "docker" / "flink" / "Dockerfile").read_text().splitlines()
    copied = {line.split()[1] for line in dockerfile if line.startswith("COPY ")}
    assert set(JOB_PACKAGES) <= copied
    assert "ENV PYTHONPATH=/opt/cep" in dockerfile
