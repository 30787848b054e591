"""Talking to a Nomad cluster: connection settings like the `nomad` CLI's, and HTTP calls.

Requests go through python-nomad's requester (URL building, auth header, per-request
TLS settings, its error classes), with what it gets wrong by default put right here
(reference/nomad.md, "python-nomad 2.1.0 gotchas"):

- TLS verification is ON unless NOMAD_SKIP_VERIFY says otherwise (its default is off);
  NOMAD_CACERT, NOMAD_CAPATH and NOMAD_TLS_SERVER_NAME, which it ignores, are honoured;
- a trailing `/` on the address would give `//v1/...` (Nomad answers 301): stripped;
- the namespace is passed explicitly on every call, including the ones it forgets;
- a 200 that is not JSON, connection failures and timeouts become our own errors;
- idempotent reads are retried with backoff, a bounded number of times; writes never.

The token is sent as a header and never appears in a message: error text is built
here from the failure's kind, and any server text is scrubbed of it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from ._errors import (
    ClusterConfigError,
    ClusterError,
    ConflictError,
    ConnectError,
    DnsError,
    MalformedResponseError,
    NotFoundError,
    AccessDeniedError,
    RequestRejectedError,
    ServerError,
    ClusterTimeoutError,
    TlsError,
)

DEFAULT_ADDRESS = "http://127.0.0.1:4646"
_TRUE = {"1", "true", "t", "yes", "y"}

#: Each setting's environment variable: what an error names when the value came from there.
VARIABLES: dict[str, str] = {
    "address": "NOMAD_ADDR",
    "token": "NOMAD_TOKEN",
    "namespace": "NOMAD_NAMESPACE",
    "region": "NOMAD_REGION",
    "ca_cert": "NOMAD_CACERT",
    "ca_path": "NOMAD_CAPATH",
    "client_cert": "NOMAD_CLIENT_CERT",
    "client_key": "NOMAD_CLIENT_KEY",
    "skip_verify": "NOMAD_SKIP_VERIFY",
    "tls_server_name": "NOMAD_TLS_SERVER_NAME",
}


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to reach Nomad; `from_env` reads the variables the nomad CLI reads."""

    address: str = DEFAULT_ADDRESS
    token: str | None = field(default=None, repr=False)
    namespace: str | None = None
    region: str | None = None
    ca_cert: str | None = None
    ca_path: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    skip_verify: bool = False
    tls_server_name: str | None = None
    timeout: float = 10.0
    """Seconds for one ordinary request (blocking queries get their wait on top)."""
    sources: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """Where a setting came from when not from its variable (a flag), for error messages."""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, names: Mapping[str, str] | None = None, **overrides: Any
    ) -> "ConnectionSettings":
        """Settings from NOMAD_* variables; keyword arguments (flags) override them.

        `names` says what to call an overriding value in errors (the CLI passes its flags,
        `{"address": "--address", ...}`); by default, the keyword argument's name."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name)
            return value if value else None

        settings = cls(
            address=get("NOMAD_ADDR") or DEFAULT_ADDRESS,
            token=get("NOMAD_TOKEN"),
            namespace=get("NOMAD_NAMESPACE"),
            region=get("NOMAD_REGION"),
            ca_cert=get("NOMAD_CACERT"),
            ca_path=get("NOMAD_CAPATH"),
            client_cert=get("NOMAD_CLIENT_CERT"),
            client_key=get("NOMAD_CLIENT_KEY"),
            skip_verify=(get("NOMAD_SKIP_VERIFY") or "").lower() in _TRUE,
            tls_server_name=get("NOMAD_TLS_SERVER_NAME"),
        )
        given = {k: v for k, v in overrides.items() if v is not None}
        sources = {k: (names or {}).get(k, k) for k in given}
        return replace(settings, **given, sources=sources)

    def source(self, setting: str) -> str:
        """What set `setting`: its flag (or keyword argument), else its NOMAD_* variable."""
        return self.sources.get(setting) or VARIABLES[setting]

    def verify(self) -> bool | str:
        """What requests' `verify` gets: a CA file or directory, True, or False."""
        if self.skip_verify:
            return False
        return self.ca_cert or self.ca_path or True

    def base_url(self) -> str:
        address = self.address.strip()
        if "://" not in address:
            address = "http://" + address
        parts = urlsplit(address)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClusterConfigError(
                f"{self.source('address')}: {self.address!r} is not an http(s) address "
                "(set it like https://nomad.example.com:4646)"
            )
        # A trailing slash would make every path //v1/..., which Nomad answers with a 301.
        return address.rstrip("/")

    def cert(self) -> tuple[str, str] | tuple[()]:
        if bool(self.client_cert) != bool(self.client_key):
            given, missing = ("client_cert", "client_key") if self.client_cert else ("client_key", "client_cert")
            how = VARIABLES[missing]
            if self.source(given).startswith("--"):
                how += f" or --{missing.replace('_', '-')}"
            raise ClusterConfigError(
                f"{self.source(given)} is set without {VARIABLES[missing]}: the client certificate and key go "
                f"together (set {how} too, or neither)"
            )
        return (self.client_cert, self.client_key) if self.client_cert and self.client_key else ()


class _ServerNameAdapter(HTTPAdapter):
    """Verify the server's certificate against a name other than the address's host
    (NOMAD_TLS_SERVER_NAME, e.g. server.global.nomad), and send it as SNI."""

    def __init__(self, server_name: str, **kwargs: Any) -> None:
        self._server_name = server_name
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = self._server_name
        kwargs["assert_hostname"] = self._server_name
        super().init_poolmanager(*args, **kwargs)


@dataclass(frozen=True)
class Reply:
    """A decoded answer: its JSON body and the X-Nomad-Index it carried (0 if none)."""

    data: Any
    index: int


class NomadClient:
    """Nomad's HTTP API for the calls matomo-nomad makes."""

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        session: requests.Session | None = None,
        retries: int = 3,
        backoff: float = 0.25,
    ) -> None:
        self.settings = settings
        self._base = settings.base_url()
        self._cert = settings.cert()
        if settings.token is not None and (
            settings.token != settings.token.strip() or any(ord(c) < 32 or ord(c) == 127 for c in settings.token)
        ):
            # requests would refuse the header with the token's repr in its message.
            raise ClusterConfigError(
                f"{settings.source('token')} has surrounding whitespace or a control character (often the newline "
                "of the file it was read from); remove it"
            )
        self._retries = retries
        self._backoff = backoff
        self._session = session or requests.Session()
        # Never follow a redirect: python-nomad passes allow_redirects=False only for GET
        # and POST, so a redirected DELETE or PUT went on to wherever Location pointed,
        # X-Nomad-Token included (requests strips only Authorization on a host change).
        self._session.max_redirects = 0
        if settings.tls_server_name and self._base.startswith("https://"):
            self._session.mount("https://", _ServerNameAdapter(settings.tls_server_name))
        self._requesters: dict[str, Any] = {}

    def with_region(self, region: str) -> "NomadClient":
        """The same connection, sending `region` on every call."""
        return NomadClient(
            replace(self.settings, region=region), session=self._session, retries=self._retries, backoff=self._backoff
        )

    # --- the calls ---------------------------------------------------------------

    def get(
        self,
        *path: str,
        namespace: str | None = None,
        params: Mapping[str, Any] | None = None,
        wait_index: int | None = None,
        wait: float = 30.0,
    ) -> Reply:
        """An idempotent read, retried on failures that may pass. With `wait_index`, a
        blocking query: Nomad answers when the resource's index passes it, or after `wait`."""
        query = dict(params or {})
        timeout = self.settings.timeout
        if wait_index is not None:
            query["index"] = str(wait_index)
            query["wait"] = f"{int(wait * 1000)}ms"
            # Nomad adds up to wait/16 of jitter before answering.
            timeout += wait * (1 + 1 / 16)
        attempt = 0
        while True:
            try:
                return self._call("get", path, namespace, query, None, timeout)
            except (ConnectError, ClusterTimeoutError, ServerError, MalformedResponseError):
                attempt += 1
                if attempt >= self._retries:
                    raise
                time.sleep(self._backoff * 2 ** (attempt - 1))

    def post(self, *path: str, body: Any, namespace: str | None = None, params: Mapping[str, Any] | None = None) -> Reply:
        return self._call("post", path, namespace, dict(params or {}), body, self.settings.timeout)

    def put(self, *path: str, body: Any, namespace: str | None = None, params: Mapping[str, Any] | None = None) -> Reply:
        return self._call("put", path, namespace, dict(params or {}), body, self.settings.timeout)

    def delete(self, *path: str, namespace: str | None = None, params: Mapping[str, Any] | None = None) -> Reply:
        return self._call("delete", path, namespace, dict(params or {}), None, self.settings.timeout)

    # --- machinery ---------------------------------------------------------------

    def _requester(self, endpoint: str) -> Any:
        # One python-nomad requester per first path segment (its ENDPOINT); the
        # namespace is passed per call, so none is configured here.
        requester = self._requesters.get(endpoint)
        if requester is None:
            from nomad.api.base import Requester

            cls = type(f"_{endpoint.title()}Requester", (Requester,), {"ENDPOINT": endpoint})
            requester = cls(
                address=self._base,
                token=self.settings.token,
                region=self.settings.region,
                timeout=self.settings.timeout,
                verify=self.settings.verify(),
                cert=self._cert,
                session=self._session,
            )
            self._requesters[endpoint] = requester
        return requester

    def _call(
        self,
        method: str,
        path: tuple[str, ...],
        namespace: str | None,
        params: dict[str, Any],
        body: Any,
        timeout: float,
    ) -> Reply:
        import nomad.api.exceptions as nomad_errors

        endpoint, *rest = path
        if namespace is not None:
            params["namespace"] = namespace
        if self.settings.region:
            params["region"] = self.settings.region
        where = f"{method.upper()} /v1/{'/'.join(path)}"
        try:
            response = self._requester(endpoint).request(
                *rest, method=method, params=params, json=body, timeout=timeout, headers={}
            )
        except nomad_errors.BaseNomadException as error:
            raise self._error(where, error.nomad_resp) from None
        except requests.RequestException as error:
            raise self._error(where, error) from None
        if 300 <= response.status_code < 400:
            # python-nomad returns any status below 400 as a success; a redirect is not
            # Nomad's answer (an empty 301 body would otherwise read as "no such job").
            raise self._error(where, response)
        return self._decode(where, response)

    def _decode(self, where: str, response: requests.Response) -> Reply:
        index = response.headers.get("X-Nomad-Index", "0")
        try:
            data = response.json() if response.content else None
        except ValueError:
            raise MalformedResponseError(
                f"{where}: the answer is not JSON ({_snippet(response.text, self.settings.token)}); "
                f"check that {self.settings.source('address')} points at a Nomad server, not a proxy or web page"
            ) from None
        return Reply(data, int(index) if index.isdigit() else 0)

    def _error(self, where: str, cause: object) -> ClusterError:
        token = self.settings.token
        address = self._base
        if isinstance(cause, requests.Response):
            status = cause.status_code
            text = _snippet(cause.text, token)
            if status in (401, 403):
                hint = (
                    "set NOMAD_TOKEN to a token allowed to do this"
                    if not token
                    else f"the token in {self.settings.source('token')} is unknown or lacks the permission"
                )
                return AccessDeniedError(f"{where}: ACL denied ({status}: {text}); {hint}")
            if status == 404:
                return NotFoundError(f"{where}: not found (404: {text})")
            if status == 400:
                return RequestRejectedError(f"{where}: Nomad rejected the request (400: {text})")
            if status == 409:
                return ConflictError(f"{where}: conflict (409: {text})")
            if 300 <= status < 400:
                return MalformedResponseError(
                    f"{where}: Nomad answered with a redirect ({status}); "
                    f"check {self.settings.source('address')} ({address})"
                )
            if status >= 500 and "Enforcing job modify index" in cause.text:
                return ConflictError(f"{where}: the job changed since it was planned ({text}); plan again")
            return ServerError(f"{where}: Nomad failed ({status}: {text}); retry, or check the server's logs")
        if isinstance(cause, requests.exceptions.TooManyRedirects) and cause.response is not None:
            return self._error(where, cause.response)  # a redirect not followed (max_redirects = 0)
        if isinstance(cause, requests.exceptions.SSLError):
            return TlsError(
                f"{where}: TLS failed talking to {address} ({_reason(cause)}); check NOMAD_CACERT/NOMAD_CAPATH, "
                "NOMAD_TLS_SERVER_NAME, or the client certificate"
            )
        if isinstance(cause, requests.exceptions.Timeout):
            return ClusterTimeoutError(f"{where}: {address} did not answer in time; check the address and the network")
        if isinstance(cause, requests.exceptions.ChunkedEncodingError):
            # The answer stopped short: the connection broke, like a drop (and a read is retried).
            return ConnectError(f"{where}: the connection to {address} broke during the answer ({_reason(cause)}); retry")
        if isinstance(cause, requests.exceptions.ConnectionError):
            text = str(cause)
            if "NameResolutionError" in text or "Name or service not known" in text or "getaddrinfo" in text:
                return DnsError(
                    f"{where}: cannot resolve the host in {self.settings.source('address')} ({address}); check the name"
                )
            if "Connection refused" in text:
                return ConnectError(f"{where}: connection refused by {address}; is Nomad running there?")
            return ConnectError(f"{where}: the connection to {address} failed ({_reason(cause)}); retry")
        return ClusterError(f"{where}: {_snippet(str(cause), token)}")


def _reason(error: BaseException) -> str:
    # requests wraps urllib3 errors several levels deep; the innermost says what happened.
    inner: BaseException = error
    while inner.args and isinstance(inner.args[0], BaseException):
        inner = inner.args[0]
    reason = getattr(inner, "reason", None)
    if reason is None and len(inner.args) == 2 and isinstance(inner.args[0], str):
        # urllib3's ProtocolError("Connection aborted.", RemoteDisconnected("Remote end closed ..."))
        detail = str(inner.args[1])
        return inner.args[0] if detail in inner.args[0] else f"{inner.args[0].rstrip('.')}: {detail}"[:200]
    text = str(reason or inner)
    return text.split(": ", 1)[-1][:200] if "object at 0x" in text else text[:200]


def _snippet(text: str, token: str | None) -> str:
    if token:
        # as sent, and as a repr would show it (escaped), before whitespace is folded
        for form in {token, repr(token)[1:-1], token.strip()} - {""}:
            text = text.replace(form, "<token>")
    text = " ".join(text.split())
    if token:
        text = text.replace(" ".join(token.split()), "<token>")
    return text if len(text) <= 200 else text[:197] + "..."
