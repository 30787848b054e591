"""Connection errors name where the wrong value came from: a flag, a keyword argument or
the NOMAD_* variable (the CLI's side is in test_cli.py)."""

from __future__ import annotations

import pytest

from matomo_nomad import ClusterError, ConnectionSettings, NomadClient


def _message(settings: ConnectionSettings) -> str:
    with pytest.raises(ClusterError) as caught:
        NomadClient(settings)
    assert caught.value.exit_code == 11
    return str(caught.value)


def test_the_variable_is_named_when_the_value_came_from_it() -> None:
    assert _message(ConnectionSettings.from_env({"NOMAD_ADDR": "ftp://nomad"})).startswith("NOMAD_ADDR: 'ftp://nomad'")
    assert _message(ConnectionSettings(address="ftp://nomad")).startswith("NOMAD_ADDR: ")


def test_the_flag_is_named_when_the_value_came_from_it() -> None:
    settings = ConnectionSettings.from_env({"NOMAD_ADDR": "http://ok:4646"}, names={"address": "--address"}, address="ftp://x")
    assert _message(settings).startswith("--address: 'ftp://x' is not an http(s) address")


def test_a_keyword_argument_is_named_by_its_keyword() -> None:
    assert _message(ConnectionSettings.from_env({}, address="ftp://x")).startswith("address: 'ftp://x'")


def test_the_token_and_certificate_errors_name_their_source() -> None:
    token = ConnectionSettings.from_env({}, names={"token": "--token"}, token="secret\n")
    message = _message(token)
    assert message.startswith("--token has surrounding whitespace") and "secret" not in message
    certificate = ConnectionSettings.from_env({"NOMAD_CLIENT_KEY": "/k.pem"})
    assert _message(certificate).startswith("NOMAD_CLIENT_KEY is set without NOMAD_CLIENT_CERT")


def test_sources_do_not_change_what_the_settings_are() -> None:
    flagged = ConnectionSettings.from_env({}, names={"address": "--address"}, address="http://a:4646")
    assert flagged == ConnectionSettings(address="http://a:4646")
    assert "sources" not in repr(flagged)
