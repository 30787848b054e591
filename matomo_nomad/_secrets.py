"""The secrets the rendered jobs read: where they live, creating them, checking them.

What is expected is derived from the per-role decisions themselves (`_roles`): every
secret reference in a role's config.ini.php (the built-in keys and any setting written
`{ secret = "<key>" }`), its secret files and its secret environment variables, at the
path its templates read. So the paths and keys here are exactly the ones the templates
use, by construction.

Values are never printed, logged or put in an error message; only paths and key names.
The salt is special: it hashes every token and session, must be the same on every
node, and must never change once Matomo is installed, so it is only ever created
(compare-and-set index 0), never overwritten, and copied between paths unchanged.
"""

from __future__ import annotations

import os
import secrets as _random
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._errors import ClusterError, ConflictError, MissingSecretsError, NotFoundError
from ._model import Deployment
from ._roles import plan_roles

T = TypeVar("T")


@dataclass(frozen=True)
class SecretLocation:
    """One Nomad Variable or Vault secret, the keys the jobs read from it, and which jobs."""

    provider: str  # "nomad" | "vault"
    path: str
    keys: tuple[str, ...]
    jobs: tuple[str, ...]


@dataclass(frozen=True)
class KeyState:
    """What is known, or was done, about one key. Never holds the value."""

    path: str
    key: str
    present: bool
    action: str = ""  # init: "kept" | "set" | "generated" | "copied" | "missing"


def expected_secrets(deployment: Deployment) -> list[SecretLocation]:
    """Every secret location the jobs read, in role order, with its keys."""
    found: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for job in plan_roles(deployment):
        keys, jobs = found.setdefault((job.secrets.provider, job.secrets.path), ([], []))
        jobs.append(job.job_id)
        keys.extend(key for key in job.secret_keys if key not in keys)
    return [SecretLocation(p, path, tuple(keys), tuple(jobs)) for (p, path), (keys, jobs) in found.items()]


def new_salt() -> str:
    """32 hexadecimal characters, the form Matomo's installer writes (reference/matomo.md)."""
    return _random.token_hex(16)


def new_password() -> str:
    return _random.token_urlsafe(32)


def sources_from_env(keys: set[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values for `keys` from MATOMO_<KEY> environment variables (e.g. MATOMO_DATABASE_PASSWORD)."""
    env = os.environ if environ is None else environ
    return {key: env[f"MATOMO_{key.upper()}"] for key in keys if env.get(f"MATOMO_{key.upper()}")}


def parse_stdin(text: str) -> dict[str, str]:
    """`key=value` lines, or one JSON object (for values with newlines)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        import json

        data = json.loads(stripped)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError("standard input must be a JSON object of strings")
        return {str(k): v for k, v in data.items()}
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"standard input line {number}: expected key=value")
        values[key.strip()] = value
    return values


# --- stores --------------------------------------------------------------------------


class NomadVariables:
    """Nomad Variables in one namespace, through the cluster client."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    def read(self, path: str) -> tuple[dict[str, str], int] | None:
        try:
            reply = self.client.get("var", path, namespace=self.namespace)
        except NotFoundError:
            return None
        data = reply.data or {}
        return dict(data.get("Items") or {}), int(data.get("ModifyIndex") or 0)

    def write(self, path: str, items: dict[str, str], modify_index: int) -> None:
        """Write with check-and-set: index 0 creates only; otherwise the variable must be
        unchanged since it was read. A conflict means someone else wrote it meanwhile."""
        try:
            self.client.put(
                "var",
                path,
                namespace=self.namespace,
                params={"cas": str(modify_index)},
                # The body's Namespace wins over the query's: keep them the same.
                body={"Namespace": self.namespace, "Path": path, "Items": items},
            )
        except ConflictError:
            raise ConflictError(
                f"{path}: the variable changed while matomo-nomad was writing it; nothing was overwritten "
                "(run `secrets init` again)"
            ) from None


class VaultKV:
    """Read-only access to a Vault KV v2 secret, for checking that the keys exist."""

    def __init__(self, address: str, token: str | None, verify: bool | str = True, namespace: str | None = None) -> None:
        self.address = address.rstrip("/")
        self.token = token
        self.verify = verify
        self.namespace = namespace

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "VaultKV | None":
        env = os.environ if environ is None else environ
        address = env.get("VAULT_ADDR")
        if not address:
            return None
        skip = env.get("VAULT_SKIP_VERIFY", "").lower() in {"1", "true", "yes"}
        verify: bool | str = False if skip else (env.get("VAULT_CACERT") or env.get("VAULT_CAPATH") or True)
        return cls(address, env.get("VAULT_TOKEN"), verify, env.get("VAULT_NAMESPACE"))

    def read_keys(self, path: str) -> set[str] | None:
        import requests

        headers = {"X-Vault-Token": self.token} if self.token else {}
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        where = f"GET {self.address}/v1/{path}"
        try:
            response = requests.get(f"{self.address}/v1/{path}", headers=headers, verify=self.verify, timeout=10)
        except requests.RequestException as error:
            raise ClusterError(f"{where}: Vault cannot be reached ({type(error).__name__}); check VAULT_ADDR") from None
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise ClusterError(f"{where}: Vault denied the read ({response.status_code}); check VAULT_TOKEN")
        if not response.ok:
            raise ClusterError(f"{where}: Vault failed ({response.status_code})")
        try:
            return set(((response.json().get("data") or {}).get("data") or {}).keys())
        except (ValueError, AttributeError):
            raise ClusterError(f"{where}: the answer is not a KV v2 secret") from None


# --- operations ----------------------------------------------------------------------


def _side_by_side(function: Callable[[str], T], paths: list[str]) -> list[T]:
    # One path per job by default: read them concurrently, as every per-job call is.
    if len(paths) < 2:
        return [function(path) for path in paths]
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        return list(pool.map(function, paths))


def check(deployment: Deployment, variables: NomadVariables | None, vault: VaultKV | None) -> list[KeyState]:
    """Whether each expected key exists (never its value)."""
    locations = expected_secrets(deployment)

    def present(location: SecretLocation) -> set[str]:
        if location.provider == "nomad":
            if variables is None:
                raise ClusterError("checking Nomad Variables needs a cluster connection (NOMAD_ADDR)")
            found = variables.read(location.path)
            return set(found[0]) if found else set()
        if vault is None:
            raise ClusterError(f"{location.path}: checking a Vault secret needs VAULT_ADDR (and VAULT_TOKEN) to be set")
        return vault.read_keys(location.path) or set()

    by_path = {loc.path: loc for loc in locations}
    keys = dict(zip(by_path, _side_by_side(lambda path: present(by_path[path]), list(by_path))))
    return [KeyState(loc.path, key, key in keys[loc.path]) for loc in locations for key in loc.keys]


def missing(states: list[KeyState]) -> list[KeyState]:
    return [s for s in states if not s.present]


def require(states: list[KeyState]) -> None:
    """Raise MissingSecretsError naming every missing path and key."""
    absent = missing(states)
    if absent:
        listed = ", ".join(f"{s.path}:{s.key}" for s in absent)
        raise MissingSecretsError(
            f"secrets missing: {listed} (create them with `matomo-nomad secrets init`; the jobs' templates "
            "would wait for them forever)"
        )


@dataclass
class InitPlan:
    """Inputs to `init`: values given by the user, and keys to generate if absent."""

    values: dict[str, str] = field(default_factory=dict, repr=False)
    generate: set[str] = field(default_factory=set)


def init(deployment: Deployment, variables: NomadVariables, given: InitPlan) -> list[KeyState]:
    """Create the Nomad Variables the jobs read. What exists is kept; the salt is created
    once and copied to every path unchanged. A key missing at one path but stored at
    others with one value is copied from them (a job added later, such as the monitoring
    job, must read the password the others already use); otherwise it comes from `given`.
    A given value that differs from a stored one is refused (ConflictError) before
    anything is written."""
    locations = [loc for loc in expected_secrets(deployment) if loc.provider == "nomad"]
    salt_key = deployment.secrets.salt_key
    paths = [loc.path for loc in locations]
    current = dict(zip(paths, _side_by_side(variables.read, paths)))
    # Each key's values across the paths that hold it.
    stored: dict[str, set[str]] = {}
    for items, _ in filter(None, current.values()):
        for key, value in items.items():
            stored.setdefault(key, set()).add(value)
    salts = stored.get(salt_key, set())
    if len(salts) > 1:
        raise ConflictError(
            f"the salt differs between {', '.join(sorted(current))}; Matomo needs one salt everywhere. "
            "Fix the variables by hand: keep the salt the installation was created with"
        )
    if salts and salt_key in given.values and given.values[salt_key] not in salts:
        # Typically an import: the stored salt is not the installation's. Changing either
        # would break every token and session, so a person has to decide.
        raise ConflictError(
            f"the salt given differs from the one already stored at {', '.join(sorted(current))}; "
            "it is never overwritten (remove the stored variables if they are wrong, then run again)"
        )
    # A value given for a key the jobs already read would land only where the key is
    # missing (nothing stored is overwritten), so the jobs would read two values.
    differing = sorted(
        key for key, value in given.values.items()
        if key != salt_key and stored.get(key) and stored[key] != {value}
        and any(key in loc.keys for loc in locations)
    )
    if differing:
        raise ConflictError(
            f"{', '.join(differing)}: the value given differs from the one already stored at "
            f"{', '.join(p for p, found in current.items() if found and any(k in found[0] for k in differing))}; "
            "init never overwrites a stored value and every job must read the same one (give the stored value, "
            "or change it at every path first, e.g. with nomad var put; nothing was written)"
        )
    salt = next(iter(salts)) if salts else (given.values.get(salt_key) or new_salt())
    salt_action = "copied" if salts else ("set" if salt_key in given.values else "generated")
    generated: dict[str, str] = {}

    states: list[KeyState] = []
    for location in locations:
        found = current[location.path]
        items, index = (dict(found[0]), found[1]) if found else ({}, 0)
        changed = False
        for key in location.keys:
            if key in items:
                states.append(KeyState(location.path, key, True, "kept"))
                continue
            if key == salt_key:
                value, action = salt, salt_action
            elif len(stored.get(key, ())) == 1:
                # The value the running jobs use (a given one equals it, see above; a
                # generated one would differ from it).
                (value,), action = stored[key], "copied"
            elif key in given.values:
                value, action = given.values[key], "set"
            elif key in given.generate:
                # One generated value per key, shared by every path that needs it.
                value, action = generated.setdefault(key, new_password()), "generated"
            else:
                states.append(KeyState(location.path, key, False, "missing"))
                continue
            items[key] = value
            changed = True
            states.append(KeyState(location.path, key, True, action))
        if changed:
            variables.write(location.path, items, index)
    return states
