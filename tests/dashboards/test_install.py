"""`neurank dashboards export` and `install` end to end, against a local server that answers as the products do."""

from __future__ import annotations

import dataclasses
import json
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.dashboards.index_mappings import FULL_SPEC
from tests.dashboards.product_server import ProductServer, serving
from tests.dashboards.saved_object_schemas import problems
from typer.testing import CliRunner, Result

from neurank.cli import ExitCode, app
from neurank.dashboards import Connection, install, objects_for_spec
from neurank.errors import StoreError

INDEX = "scifact"


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"NEURANK_HOME": str(tmp_path / "home"), "NEURANK_RUNTIME": "torch", "NEURANK_INT8": "false",
                       "NEURANK_INDEX": INDEX}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def kibana() -> Iterator[ProductServer]:
    with serving(ProductServer("kibana")) as server:
        yield server


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def exported(product: str) -> list[dict[str, Any]]:
    result = cli("dashboards", "export", "--for", product)
    assert result.exit_code == ExitCode.OK, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def installed(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == ExitCode.OK, result.output
    return json.loads(result.stdout)["objects"]


def test_install_posts_the_exported_file_to_kibana(kibana: ProductServer) -> None:
    objects = installed(cli("dashboards", "install", "--url", kibana.url, "--for", "kibana", "--json"))
    assert [(o["type"], o["id"], o["outcome"]) for o in objects] == [
        (obj["type"], obj["id"], "created") for obj in exported("kibana")]
    (post,) = kibana.received
    assert (post.method, post.path, post.query) == ("POST", "/api/saved_objects/_import", {"overwrite": ["true"]})
    assert post.headers["kbn-xsrf"] == "true" and post.headers["osd-xsrf"] is None
    assert "Authorization" not in post.headers
    (part,) = post.parts
    assert (part.name, part.filename, part.content_type) == ("file", "neurank.ndjson", "application/ndjson")
    assert [json.loads(line) for line in part.content.decode().splitlines()] == exported("kibana")
    assert problems(part.content.decode(), "kibana") == []
    assert {key[1] for key in kibana.saved} == {o["id"] for o in objects}


def test_a_second_install_overwrites_instead_of_adding_copies(kibana: ProductServer) -> None:
    first = installed(cli("dashboards", "install", "--url", kibana.url, "--for", "kibana", "--json"))
    again = installed(cli("dashboards", "install", "--url", kibana.url, "--for", "kibana", "--json"))
    assert [o["outcome"] for o in again] == ["overwritten"] * len(first)
    assert [o["id"] for o in again] == [o["id"] for o in first]
    assert len(kibana.saved) == len(first)


def test_the_product_is_told_by_its_status_answer() -> None:
    with serving(ProductServer("opensearch-dashboards")) as dashboards:
        objects = installed(cli("dashboards", "install", "--url", dashboards.url + "/", "--json"))
    status, post = dashboards.received
    assert (status.method, status.path) == ("GET", "/api/status")
    assert post.headers["osd-xsrf"] == "true" and post.headers["kbn-xsrf"] is None
    (part,) = post.parts
    assert problems(part.content.decode(), "opensearch-dashboards") == []
    assert all(o["outcome"] == "created" for o in objects)


def test_a_server_that_names_no_product_needs_the_flag() -> None:
    with serving(ProductServer(None)) as other:
        result = cli("dashboards", "install", "--url", other.url)
    assert result.exit_code == ExitCode.USAGE
    assert "pass --for kibana or --for opensearch-dashboards" in result.output
    assert [r.method for r in other.received] == ["GET"]


def test_objects_the_product_refuses_make_a_partial_install() -> None:
    with serving(ProductServer("opensearch-dashboards", supported={"index-pattern", "search"})) as dashboards:
        as_json = cli("dashboards", "install", "--url", dashboards.url, "--json")
        table = cli("dashboards", "install", "--url", dashboards.url)
    assert as_json.exit_code == table.exit_code == ExitCode.PARTIAL, as_json.output
    outcomes = {(o["type"], o["outcome"]) for o in json.loads(as_json.stdout)["objects"]}
    assert outcomes == {("index-pattern", "created"), ("search", "created"), ("visualization", "unsupported_type")}
    assert "unsupported_type" in table.output and "overwritten" in table.output


def test_the_wrong_product_is_refused_for_its_xsrf_header(kibana: ProductServer) -> None:
    result = cli("dashboards", "install", "--url", kibana.url, "--for", "opensearch-dashboards")
    assert result.exit_code == ExitCode.STORE
    assert "answered 400: Request must contain a kbn-xsrf header" in result.output
    assert kibana.saved == {}


def test_credentials_go_in_a_header_and_never_into_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURANK_OPENSEARCH_USER", "neurank")
    monkeypatch.setenv("NEURANK_OPENSEARCH_PASSWORD", "s3cret-store")
    # "neurank:s3cret-store" in base64: the store's credentials, used when no dashboards user is set
    with serving(ProductServer("kibana", authorization="Basic bmV1cmFuazpzM2NyZXQtc3RvcmU=")) as kibana:
        assert installed(cli("dashboards", "install", "--url", kibana.url, "--json"))
        monkeypatch.setenv("NEURANK_DASHBOARDS_USER", "neurank")
        monkeypatch.setenv("NEURANK_DASHBOARDS_PASSWORD", "wrong-pass")
        refused = cli("dashboards", "install", "--url", kibana.url, "--for", "kibana")
    assert refused.exit_code == ExitCode.STORE
    assert "answered 401" in refused.output and "NEURANK_DASHBOARDS_PASSWORD" in refused.output
    assert "wrong-pass" not in refused.output and "s3cret" not in refused.output


def test_an_api_key_is_sent_as_kibana_expects() -> None:
    with serving(ProductServer("kibana", authorization="ApiKey a2V5OnNlY3JldA==")) as kibana:
        assert installed(cli("dashboards", "install", "--url", kibana.url, "--api-key", "a2V5OnNlY3JldA==",
                             "--json"))
    assert all(r.headers["Authorization"] == "ApiKey a2V5OnNlY3JldA==" for r in kibana.received)


def test_a_server_error_or_no_server_is_a_store_error() -> None:
    with serving(ProductServer("kibana", status_code=503)) as failing:
        busy = cli("dashboards", "install", "--url", failing.url, "--for", "kibana")
    assert busy.exit_code == ExitCode.STORE and "answered 503" in busy.output and "retry later" in busy.output
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the socket closes
    down = cli("dashboards", "install", "--url", f"http://127.0.0.1:{port}", "--for", "kibana")
    assert down.exit_code == ExitCode.STORE and "is up" in down.output


@pytest.mark.parametrize(("args", "message"), [
    (("--url", "ftp://kibana:5601"), "not an http(s)://host:port URL"),
    (("--url", "http://elastic:pw@kibana:5601", "--for", "kibana"), "carries credentials"),
    (("--url", "http://kibana:5601", "--for", "grafana"), "unknown dashboards product 'grafana'"),
])
def test_bad_flags_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = cli("dashboards", "install", *args)
    assert result.exit_code == ExitCode.USAGE
    assert message in result.output and "pw@" not in result.output


def test_export_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "neurank.ndjson"
    result = cli("dashboards", "export", "--for", "opensearch-dashboards", "--index", "nfcorpus", "--out", str(out))
    assert result.exit_code == ExitCode.OK, result.output
    assert problems(out.read_text(), "opensearch-dashboards") == []
    assert json.loads(out.read_text().splitlines()[0])["attributes"]["title"] == "nfcorpus"
    assert cli("dashboards", "export", "--for", "grafana").exit_code == ExitCode.USAGE
    unwritable = cli("dashboards", "export", "--for", "kibana", "--out", str(tmp_path))
    assert unwritable.exit_code == ExitCode.USAGE and f"cannot write {tmp_path}" in unwritable.output


def test_a_redirect_is_reported_not_followed() -> None:
    with serving(ProductServer("kibana", redirect="/login?next=%2Fapi")) as kibana:
        result = cli("dashboards", "install", "--url", kibana.url, "--for", "kibana")
    assert result.exit_code == ExitCode.STORE
    assert "answered 302" in result.output and "redirects to /login" in result.output
    assert len(kibana.received) == 1


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1, and a server context that presents it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=neurank",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


def test_https_with_a_ca_bundle_or_without_verification(certificate: tuple[Path, ssl.SSLContext]) -> None:
    cert, context = certificate
    with serving(ProductServer("opensearch-dashboards"), tls=context) as dashboards:
        unverified = cli("dashboards", "install", "--url", dashboards.url, "--for", "opensearch-dashboards")
        assert installed(cli("dashboards", "install", "--url", dashboards.url, "--ca-certs", str(cert), "--json"))
        assert installed(cli("dashboards", "install", "--url", dashboards.url, "--insecure", "--json"))
    assert unverified.exit_code == ExitCode.STORE and "CERTIFICATE_VERIFY_FAILED" in unverified.output
    assert [r.method for r in dashboards.received] == ["GET", "POST", "GET", "POST"]


def test_missing_references_are_named() -> None:
    """A file whose search points at an index pattern the product does not have (here: left out of the file)."""
    saved = objects_for_spec(INDEX, FULL_SPEC, "kibana")
    pattern, search = saved.objects[:2]
    partial = dataclasses.replace(saved, objects=[search])
    with serving(ProductServer("kibana")) as kibana:
        report = install(Connection(kibana.url), partial)
    (outcome,) = report.objects
    assert (outcome.id, outcome.outcome, outcome.failed) == (search["id"], "missing_references", True)
    assert outcome.message == f"references missing objects: index-pattern {pattern['id']}"


def test_an_answer_that_is_no_import_result_is_refused() -> None:
    with serving(ProductServer("kibana", status_code=200)) as other, pytest.raises(StoreError,
                                                                                    match="with no import result"):
        install(Connection(other.url), objects_for_spec(INDEX, FULL_SPEC, "kibana"))


def test_export_maps_the_index_as_the_store_holds_it() -> None:
    from neurank.config import Settings
    from neurank.index_spec import IndexSpec
    from neurank.stores import open_store

    def field_names() -> set[str]:
        pattern = exported("opensearch-dashboards")[0]
        return {f["name"] for f in json.loads(pattern["attributes"]["fields"])}

    assert "embedding" in field_names()  # no index yet: the configured encoders' mapping, dense included
    open_store(Settings()).create_index(INDEX, IndexSpec(language="english"))  # a BM25-only index
    assert "embedding" not in field_names() and "content" in field_names()


def test_the_store_api_key_is_used_when_the_dashboards_have_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURANK_OPENSEARCH_API_KEY", "c3RvcmU6a2V5")
    with serving(ProductServer("kibana", authorization="ApiKey c3RvcmU6a2V5")) as kibana:
        assert installed(cli("dashboards", "install", "--url", kibana.url, "--for", "kibana", "--json"))
    assert kibana.received and all(r.headers["Authorization"] == "ApiKey c3RvcmU6a2V5" for r in kibana.received)
