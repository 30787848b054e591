"""Failures talking to Nomad: each kind becomes its own error class (and exit code),
reads are retried a bounded number of times and writes never, and the token never
shows in any message. Against the fake Nomad's injected faults."""

from __future__ import annotations

import socket
import time
import traceback
from collections.abc import Callable
from typing import Any

import pytest

from matomo_nomad import Cluster, ConnectionSettings, NomadClient
from matomo_nomad._errors import (
    AccessDeniedError,
    ClusterError,
    ClusterTimeoutError,
    ConflictError,
    ConnectError,
    DnsError,
    MalformedResponseError,
    NotFoundError,
    RequestRejectedError,
    ServerError,
    TlsError,
)
from tests.fakenomad import FakeNomad
from tests.test_cluster import (  # noqa: F401  (fake_nomad: the fixture, with secrets seeded)
    ALL_JOB_IDS,
    JOB_IDS,
    SETUP,
    TOKEN,
    connect,
    deployment,
    fake_nomad,
    registered_ids,
    role_runs,
    seed_secrets,
    setup_run,
)

pytest_plugins = ("tests.fakenomad.fixtures",)

JOB = r"^/v1/job/matomo-admin$"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(fake: FakeNomad | None = None, **settings: Any) -> NomadClient:
    if fake is not None:
        settings.setdefault("address", fake.address)
    return NomadClient(ConnectionSettings(**settings), backoff=0.01)


def read_job(c: NomadClient) -> Any:
    return c.get("job", "matomo-admin", namespace="default")


def all_text(error: BaseException) -> str:
    """Everything a person could be shown about an exception."""
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


def one_line(error: ClusterError) -> str:
    text = str(error)
    assert text and "\n" not in text, text
    return text


def assert_only_setup_was_sent(result: Any, error: type) -> None:
    """The setup job's registration failed with `error`: no role was sent, none registered."""
    setup = setup_run(result)
    assert setup is not None and setup.outcome == "failed" and isinstance(setup.error, error), setup
    assert [(j.job_id, j.outcome, j.error) for j in role_runs(result)] == [(j, "not registered", None) for j in JOB_IDS]


# --- each failure, its class and exit code ------------------------------------------------


def test_connection_refused() -> None:
    c = client(address=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ConnectError, match="connection refused") as caught:
        read_job(c)
    assert caught.value.exit_code == 12
    assert "is Nomad running there?" in one_line(caught.value)


def test_host_name_that_does_not_resolve() -> None:
    started = time.monotonic()
    with pytest.raises(DnsError, match="cannot resolve") as caught:
        read_job(client(address="http://nomad.matomo-nomad-test.invalid:4646"))
    assert caught.value.exit_code == 13 and "nomad.matomo-nomad-test.invalid" in one_line(caught.value)
    assert time.monotonic() - started < 5


def test_a_server_that_does_not_answer_times_out_after_three_tries(fake_nomad: FakeNomad) -> None:
    fake_nomad.hang(JOB)
    started = time.monotonic()
    with pytest.raises(ClusterTimeoutError, match="did not answer in time") as caught:
        read_job(client(fake_nomad, timeout=0.5))
    elapsed = time.monotonic() - started
    assert caught.value.exit_code == 14
    one_line(caught.value)
    assert fake_nomad.count(JOB) == 3
    assert 1.5 <= elapsed < 4, elapsed


def test_a_write_that_times_out_is_not_sent_again(fake_nomad: FakeNomad) -> None:
    cluster = Cluster(client(fake_nomad, timeout=0.5))
    # the setup job's registration times out: sent once, and nothing is sent after it
    fake_nomad.hang(r"^/v1/jobs$", method="POST")
    assert_only_setup_was_sent(cluster.run(deployment(), detach=True), ClusterTimeoutError)
    assert registered_ids(fake_nomad) == [SETUP]
    # the setup job's goes through (skip=1), the roles' time out
    fake_nomad.clear_faults()
    fake_nomad.clear_requests()
    fake_nomad.hang(r"^/v1/jobs$", method="POST", skip=1)
    result = cluster.run(deployment(), detach=True)
    assert setup_run(result).outcome == "completed"
    assert all(isinstance(j.error, ClusterTimeoutError) for j in role_runs(result))
    assert sorted(registered_ids(fake_nomad)) == sorted(ALL_JOB_IDS)  # one per job, none repeated


def test_tls_failure(fake_nomad_tls: FakeNomad, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(TlsError) as caught:
        read_job(client(fake_nomad_tls))
    assert caught.value.exit_code == 15 and "NOMAD_CACERT" in one_line(caught.value)


def test_acl_without_a_token(make_fake_nomad: Callable[..., FakeNomad]) -> None:
    fake = make_fake_nomad(acl_token=TOKEN)
    with pytest.raises(AccessDeniedError) as caught:
        connect(fake).plan(deployment())
    assert caught.value.exit_code == 16
    assert "403: Permission denied" in one_line(caught.value) and "set NOMAD_TOKEN" in str(caught.value)


def test_acl_with_an_unknown_token(make_fake_nomad: Callable[..., FakeNomad]) -> None:
    fake = make_fake_nomad(acl_token="the-right-one")
    with pytest.raises(AccessDeniedError) as caught:
        connect(fake, token=TOKEN).plan(deployment())
    assert "403: ACL token not found" in one_line(caught.value)
    assert "token in NOMAD_TOKEN is unknown or lacks the permission" in str(caught.value)
    assert TOKEN not in all_text(caught.value)


def test_acl_401(fake_nomad: FakeNomad) -> None:
    fake_nomad.fail(JOB, 401, "Unauthorized")
    with pytest.raises(AccessDeniedError, match="401") as caught:
        read_job(client(fake_nomad, token=TOKEN))
    assert caught.value.exit_code == 16
    assert fake_nomad.count(JOB) == 1  # not retried


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (404, "job not found", NotFoundError, 17),
        (400, "1 error occurred:\n\t* Task group admin validation failed\n\n", RequestRejectedError, 18),
        (500, "rpc error: No cluster leader", ServerError, 19),
        (503, "Service Unavailable", ServerError, 19),
        (500, "Enforcing job modify index 3: job exists with conflicting job modify index: 7", ConflictError, 20),
        (409, "variable conflict", ConflictError, 20),
    ],
)
def test_http_errors_of_plan(fake_nomad: FakeNomad, status: int, body: str, error: type, code: int) -> None:
    fake_nomad.fail(r"/plan$", status, body, method="POST", times=1)
    with pytest.raises(error) as caught:
        connect(fake_nomad).plan(deployment())
    assert type(caught.value) is error and caught.value.exit_code == code
    text = one_line(caught.value)
    assert "POST /v1/job/matomo-" in text and "/plan" in text
    assert f"{status}" in text or error is ConflictError
    assert " ".join(body.split())[:40] in text  # Nomad's own words, on one line
    assert fake_nomad.count(r"/plan$", "POST") == 4  # a POST is never repeated


def test_a_200_that_is_not_json(fake_nomad: FakeNomad) -> None:
    fake_nomad.non_json(JOB)
    with pytest.raises(MalformedResponseError, match="not JSON") as caught:
        read_job(client(fake_nomad))
    assert caught.value.exit_code == 21 and "502 Bad Gateway" in one_line(caught.value)
    fake_nomad.clear_faults()
    fake_nomad.non_json(r"/plan$")
    with pytest.raises(MalformedResponseError):
        connect(fake_nomad).plan(deployment())
    assert fake_nomad.count(r"/plan$") == 4


def test_a_redirect_on_a_read_is_an_error_not_an_absent_job(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    cluster.run(deployment(), detach=True)
    fake_nomad.redirect(r"^/v1/job/[^/]+$", method="GET", location="/ui/jobs")
    with pytest.raises(MalformedResponseError, match="redirect") as caught:
        cluster.status(deployment())
    assert caught.value.exit_code == 21 and "301" in one_line(caught.value)
    with pytest.raises(MalformedResponseError):
        cluster.plan(deployment())
    with pytest.raises(MalformedResponseError):
        cluster.destroy(deployment())
    assert fake_nomad.count("", "DELETE") == 0


def test_a_redirect_on_a_write_is_an_error_not_a_registration(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    fake_nomad.redirect(r"^/v1/jobs$", method="POST")
    result = cluster.run(deployment(), detach=True)
    assert_only_setup_was_sent(result, MalformedResponseError)
    assert "301" in setup_run(result).failure
    assert all(fake_nomad.job(j) is None for j in ALL_JOB_IDS)
    assert registered_ids(fake_nomad) == [SETUP]
    # the setup job's registration goes through (skip=1), the roles' are redirected
    fake_nomad.clear_faults()
    fake_nomad.clear_requests()
    fake_nomad.redirect(r"^/v1/jobs$", method="POST", skip=1)
    result = cluster.run(deployment(), detach=True)
    assert setup_run(result).outcome == "completed"
    roles = role_runs(result)
    assert [j.outcome for j in roles] == ["failed"] * 4
    assert all(isinstance(j.error, MalformedResponseError) and "301" in (j.failure or "") for j in roles)
    assert all(fake_nomad.job(j) is None for j in JOB_IDS)
    assert sorted(registered_ids(fake_nomad)) == sorted(ALL_JOB_IDS)


def test_a_redirected_delete_is_not_followed_and_the_token_stays_home(
        make_fake_nomad: Callable[..., FakeNomad]) -> None:
    home, elsewhere = make_fake_nomad(), make_fake_nomad()
    seed_secrets(home)
    cluster = connect(home, token=TOKEN)
    cluster.run(deployment(), detach=True)
    home.redirect(r"^/v1/job/", method="DELETE", location=f"{elsewhere.address}/v1/job/matomo-admin")
    results = []
    with pytest.raises(MalformedResponseError) as caught:
        results = cluster.destroy(deployment())
    assert results == [] and caught.value.exit_code == 21
    assert elsewhere.requests == []  # neither followed nor given the token
    assert all(not home.job(j)["Stop"] for j in JOB_IDS)


def test_a_dropped_connection(fake_nomad: FakeNomad) -> None:
    fake_nomad.drop(JOB)
    with pytest.raises(ConnectError) as caught:
        read_job(client(fake_nomad))
    assert caught.value.exit_code == 12 and "Remote end closed connection" in one_line(caught.value)
    assert fake_nomad.count(JOB) == 3
    fake_nomad.clear_faults()
    fake_nomad.clear_requests()
    fake_nomad.drop(r"^/v1/jobs$", method="POST")
    cluster = connect(fake_nomad)
    assert_only_setup_was_sent(cluster.run(deployment(), detach=True), ConnectError)
    assert registered_ids(fake_nomad) == [SETUP]
    fake_nomad.clear_faults()
    fake_nomad.clear_requests()
    fake_nomad.drop(r"^/v1/jobs$", method="POST", skip=1)  # the setup job's goes through
    result = cluster.run(deployment(), detach=True)
    assert setup_run(result).outcome == "completed"
    assert all(isinstance(j.error, ConnectError) for j in role_runs(result))
    assert sorted(registered_ids(fake_nomad)) == sorted(ALL_JOB_IDS)


def test_a_connection_broken_in_the_middle_of_the_answer(fake_nomad: FakeNomad) -> None:
    connect(fake_nomad).run(deployment(), detach=True)
    fake_nomad.clear_requests()
    fake_nomad.truncate(JOB, times=1)
    assert read_job(client(fake_nomad)).data["ID"] == "matomo-admin"  # retried: the second answer is whole
    assert fake_nomad.count(JOB) == 2
    fake_nomad.truncate(JOB)
    with pytest.raises(ConnectError) as caught:
        read_job(client(fake_nomad))
    assert caught.value.exit_code == 12 and "broke during the answer" in one_line(caught.value)
    assert fake_nomad.count(JOB) == 2 + 3


# --- retries: reads a bounded number of times, writes never ------------------------------


def test_a_read_that_fails_once_is_retried(fake_nomad: FakeNomad) -> None:
    connect(fake_nomad).run(deployment(), detach=True)
    fake_nomad.clear_requests()
    fake_nomad.fail(JOB, 500, "rpc error: leader changed", times=1)
    assert read_job(client(fake_nomad)).data["ID"] == "matomo-admin"
    assert [r.status for r in fake_nomad.requests_to(JOB)] == [500, 200]


def test_a_read_that_keeps_failing_is_tried_exactly_three_times(fake_nomad: FakeNomad) -> None:
    fake_nomad.fail(JOB, 500, "rpc error: No cluster leader")
    with pytest.raises(ServerError):
        read_job(client(fake_nomad))
    assert fake_nomad.count(JOB) == 3
    fake_nomad.clear_requests()
    with pytest.raises(ServerError):
        connect(fake_nomad).status(deployment())
    assert fake_nomad.count(JOB) == 3


def test_a_blocking_read_is_retried_too(fake_nomad: FakeNomad) -> None:
    fake_nomad.fail(r"^/v1/deployment/", 500, "rpc error: leader changed", times=1, skip=1)
    result = connect(fake_nomad).run(deployment())
    assert result.ok, result.first_error()
    assert 500 in [r.status for r in fake_nomad.requests_to(r"^/v1/deployment/")]


def test_a_register_that_fails_is_sent_exactly_once(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    fake_nomad.fail(r"^/v1/jobs$", 500, "rpc error: raft apply failed", method="POST")
    assert_only_setup_was_sent(cluster.run(deployment()), ServerError)
    assert registered_ids(fake_nomad) == [SETUP]
    fake_nomad.clear_faults()
    fake_nomad.clear_requests()
    fake_nomad.fail(r"^/v1/jobs$", 500, "rpc error: raft apply failed", method="POST", skip=1)
    result = cluster.run(deployment())
    assert setup_run(result).outcome == "completed"
    assert [type(j.error) for j in role_runs(result)] == [ServerError] * 4
    assert fake_nomad.count(r"^/v1/jobs$", "POST") == 5
    assert sorted(registered_ids(fake_nomad)) == sorted(ALL_JOB_IDS)


def test_a_delete_that_fails_is_sent_exactly_once(fake_nomad: FakeNomad) -> None:
    cluster = connect(fake_nomad)
    cluster.run(deployment(), detach=True)
    fake_nomad.fail(r"^/v1/job/matomo-admin$", 500, "rpc error: raft apply failed", method="DELETE")
    with pytest.raises(ServerError):
        cluster.destroy(deployment())
    assert fake_nomad.count(JOB, "DELETE") == 1


# --- the token never shows ------------------------------------------------------------------


def _token_echoing_faults(fake: FakeNomad) -> list[tuple[str, Callable[[], None]]]:
    """Faults whose answers carry the token back, the way a proxy or a debug page might."""
    return [
        ("500", lambda: fake.fail(None, 500, f"internal error for token {TOKEN}")),
        ("403", lambda: fake.fail(None, 403, f"ACL token {TOKEN} not found")),
        ("400", lambda: fake.fail(None, 400, f"bad request X-Nomad-Token: {TOKEN}")),
        ("404", lambda: fake.fail(None, 404, f"no such token {TOKEN}")),
        ("409", lambda: fake.fail(None, 409, f"conflict {TOKEN}")),
        ("conflict", lambda: fake.fail(None, 500, f"Enforcing job modify index 1: {TOKEN}")),
        ("non-json", lambda: fake.non_json(None, body=f"<html>{TOKEN}</html>")),
        ("redirect", lambda: fake.redirect(None, location=f"/login?token={TOKEN}")),
        ("drop", lambda: fake.drop(None)),
        ("truncate", lambda: fake.truncate(None)),
    ]


def test_the_token_never_appears_in_any_error(make_fake_nomad: Callable[..., FakeNomad]) -> None:
    fake = make_fake_nomad()
    seed_secrets(fake)
    texts: list[str] = []
    for name, inject in _token_echoing_faults(fake):
        fake.clear_faults()
        inject()
        cluster = connect(fake, token=TOKEN)
        for operation in (cluster.plan, cluster.status, cluster.destroy, lambda _: read_job(cluster.client)):
            try:
                texts.append(repr(operation(deployment())))  # a 404 reads as "absent" for status and destroy
            except ClusterError as error:
                texts.append(f"{name}: {all_text(error)}")
        fake.clear_faults()
        fake.inject("status", r"^/v1/jobs$", method="POST", status=500, body=f"oops {TOKEN}")
        result = cluster.run(deployment(), detach=True)
        texts.append(repr(result))
        texts.extend(all_text(j.error) for j in result.jobs if j.error is not None)
    # nothing answered, nothing resolved, nothing verified
    for settings in ({"address": f"http://127.0.0.1:{closed_port()}"}, {"address": "http://x.invalid:4646"},
                     {"address": fake.address, "timeout": 0.2}):
        fake.clear_faults()
        fake.hang(None)
        try:
            read_job(NomadClient(ConnectionSettings(token=TOKEN, **settings), backoff=0.01))
        except ClusterError as error:
            texts.append(all_text(error))
    fake.release_hangs()
    assert len(texts) >= 40
    assert all(requests_token_free(t) for t in texts), next(t for t in texts if not requests_token_free(t))
    # and it was sent, every time, as the header
    assert {r.header("X-Nomad-Token") for r in fake.requests} == {TOKEN}


def requests_token_free(text: str) -> bool:
    return TOKEN not in text and TOKEN[-12:] not in text


def test_the_token_is_scrubbed_from_nomads_own_words(fake_nomad: FakeNomad) -> None:
    fake_nomad.fail(r"/plan$", 500, f"token {TOKEN} rejected", method="POST")
    with pytest.raises(ServerError) as caught:
        connect(fake_nomad, token=TOKEN).plan(deployment())
    assert "token <token> rejected" in str(caught.value)


@pytest.mark.parametrize("token", [TOKEN + "\n", " " + TOKEN, TOKEN + "\r\nX-Injected: 1", TOKEN + "\x00"],
                         ids=["newline", "leading-space", "header-injection", "nul"])
def test_a_token_a_header_cannot_carry_is_refused_without_showing_it(fake_nomad: FakeNomad, token: str) -> None:
    # a newline is what a token read from a file usually brings along
    with pytest.raises(ClusterError) as caught:
        connect(fake_nomad, token=token).plan(deployment())
    assert caught.value.exit_code == 11 and "NOMAD_TOKEN" in one_line(caught.value)
    assert requests_token_free(all_text(caught.value))
    assert fake_nomad.requests == []
