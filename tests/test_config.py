"""Settings: one ConfigError line naming the variable for any bad value, and credentials never echoed."""

from __future__ import annotations

import re

import pytest

from neurank.config import IngestOptions, load_settings
from neurank.errors import ConfigError, redact


@pytest.mark.parametrize(("text", "shown"), [
    ("admin:secret@host:9200", "admin:***@host:9200"),
    ("cannot reach https://admin:secret@host:9200/idx", "cannot reach https://admin:***@host:9200/idx"),
    ("GET http://host:9200/_search?token=abc&size=3", "GET http://host:9200/_search?token=***&size=3"),
    ("http://host/?a=1&API_KEY=k&password=p", "http://host/?a=1&API_KEY=***&password=***"),
    ("[index.max_result_window] at 12:30 for ops@example.org", None),
    ("local:/data/a:b", None),
])
def test_redact_hides_passwords_and_secret_parameters_only(text: str, shown: str | None) -> None:
    assert redact(text) == (text if shown is None else shown)


def test_every_bad_value_is_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURANK_THREADS", "0")
    monkeypatch.setenv("NEURANK_LOCAL_BUSY_TIMEOUT_S", "abc")
    with pytest.raises(ConfigError) as caught:
        load_settings(store="https://neurank:hunter2@search.example:9200")
    message = str(caught.value)
    assert "NEURANK_THREADS='0'" in message and "NEURANK_LOCAL_BUSY_TIMEOUT_S='abc'" in message
    assert "--store" in message and "carries credentials" in message and "hunter2" not in message


def test_flags_override_the_environment_and_none_overrides_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURANK_INDEX", "from-env")
    assert load_settings(index=None).index == "from-env"
    assert load_settings(index="from-flag").index == "from-flag"


def test_ingest_options_are_read_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURANK_INGEST_BATCH_DOCUMENTS", "0")
    settings = load_settings()
    with pytest.raises(ConfigError, match="NEURANK_INGEST_BATCH_DOCUMENTS='0'"):
        settings.ingest_options()
    given = IngestOptions(batch_documents=5)
    assert load_settings(ingest=given).ingest_options() is given


@pytest.mark.parametrize(("env", "problem"), [
    ({"NEURANK_BROKER_URL": "kafka://guest:s3cret@host:9092"},
     "NEURANK_BROKER_URL: unsupported broker URL 'kafka://guest:***@host:9092'; expected redis://"),
    ({"NEURANK_BROKER_URL": "amqp://host//", "NEURANK_LEDGER_URL": "amqp://host//"},
     "NEURANK_LEDGER_URL: 'amqp://host//' is not a Redis URL"),
])
def test_a_broker_or_ledger_url_of_the_wrong_kind_is_named(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=re.escape(problem)) as caught:
        load_settings()
    assert "s3cret" not in str(caught.value)


def test_run_records_live_in_redis_whichever_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(broker_url="rediss://host:6380/2").ledger_redis_url() == "rediss://host:6380/2"
    rabbit = load_settings(broker_url="amqp://neurank:s3cret@host:5672/ingest")
    with pytest.raises(ConfigError, match="set NEURANK_LEDGER_URL to a Redis") as caught:
        rabbit.ledger_redis_url()
    assert "s3cret" not in str(caught.value)
    monkeypatch.setenv("NEURANK_LEDGER_URL", "redis://host:6379/3")
    assert load_settings(broker_url="pyamqp://host//").ledger_redis_url() == "redis://host:6379/3"


def test_fuzziness_is_checked_and_builds_the_fuzzy_options(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().fuzzy() is None
    monkeypatch.setenv("NEURANK_FUZZINESS", "auto")
    monkeypatch.setenv("NEURANK_FUZZY_PREFIX_LENGTH", "2")
    fuzzy = load_settings().fuzzy()
    assert fuzzy is not None and (fuzzy.fuzziness, fuzzy.prefix_length, fuzzy.max_expansions) == ("AUTO", 2, 50)
    assert load_settings(fuzziness="none").fuzzy() is None
    monkeypatch.setenv("NEURANK_FUZZINESS", "AUTO:5,2")
    monkeypatch.setenv("NEURANK_FUZZY_MAX_EXPANSIONS", "0")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "NEURANK_FUZZINESS: fuzziness 'AUTO:5,2'" in str(caught.value)
    assert "NEURANK_FUZZY_MAX_EXPANSIONS='0'" in str(caught.value)


def test_an_ngram_size_outside_the_range_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(ngram=3).ngram == 3
    monkeypatch.setenv("NEURANK_NGRAM", "1")
    with pytest.raises(ConfigError, match="NEURANK_NGRAM: n-grams of 1 characters"):
        load_settings()
