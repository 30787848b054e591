"""Which settings hold credentials, and the secret keys that stand in for them.

A deployment file is meant to be committed and its jobs are visible to anyone who can
read them in Nomad, so a credential must never be written there as a literal: it is
written `{ secret = "<key>" }`, and the value is read from the secret store at run time
(`_roles`, `_ini`, `_envfile`). This module decides which names are credentials, for
config.ini.php settings and for environment variables alike.

A name is a credential when its last word says so. Words are split at `_` and at
camelCase boundaries, case-insensitively:

- the last word is password, pass, passwd, passphrase, secret or token
  (`password`, `[mail] password`, `admin_pass`, `SMTP_TOKEN`, `redisPassword`,
  `clientSecret`), or
- the last word is key and an earlier one is api or secret (`api_key`, `apiKey`,
  `secretKey`, `secret_access_key`).

That covers the names the issue lists (`password`, `pass`, `passwd`, `secret`, `token`,
`api_key`, and any `*_password`, `*_pass`, `*_secret`, `*_token`, `*_api_key`), and the
camelCase names plugins give their settings: Matomo reads a plugin's system setting
from config.ini.php's `[PluginName]` section when it is there (core/Settings/Plugin/
SystemSetting.php 5.1.2, getValueFromConfig), and credential settings are named like
QueuedTracking's `redisPassword` or an OIDC plugin's `clientSecret`. Every key of
Matomo's own global.ini.php that is not a credential (`password_hash_algorithm`,
`only_allow_secure_auth_tokens`, `ssl_key`, ...) stays allowed: the tests run the rule
over all of them (tests/fixtures/global-ini-keys-5.1.2.json).
"""

from __future__ import annotations

import re

_CREDENTIAL_WORDS = frozenset({"password", "pass", "passwd", "passphrase", "secret", "token"})
_KEY_QUALIFIERS = frozenset({"api", "secret"})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+|[A-Z]+")

KNOWN_CREDENTIALS: tuple[tuple[str, str, str], ...] = (
    # (section, key, where it comes from); "LoginLdap_*" is one section per LDAP server.
    ("database", "password", "Matomo config/global.ini.php"),
    ("database_reader", "password", "Matomo config/global.ini.php"),
    ("database_tests", "password", "Matomo config/global.ini.php"),
    ("RedisCache", "password", "Matomo config/global.ini.php"),
    ("mail", "password", "Matomo config/global.ini.php (the SMTP password)"),
    ("proxy", "password", "Matomo config/global.ini.php (the outgoing HTTP proxy's password)"),
    ("QueuedTracking", "redisPassword", "plugin-QueuedTracking SystemSettings.php"),
    ("LoginLdap_*", "admin_pass", "plugin-LoginLdap Ldap/ServerInfo.php, makeConfigured (the bind password)"),
    ("LoginLdap", "adminPass", "plugin-LoginLdap Ldap/ServerInfo.php, makeFromOldConfig (the pre-3.0 keys)"),
)
"""Credentials of Matomo and of the plugins matomo-nomad knows, with their source; each
is a credential by the rule above (tested), listed to document where they come from."""


def words(name: str) -> list[str]:
    """`name` split at `_` and camelCase boundaries, lowercased: redisPassword -> [redis, password]."""
    return [word.lower() for part in name.split("_") for word in _WORD.findall(part)]


def is_credential(name: str) -> bool:
    """Whether a setting or environment variable of this name holds a credential."""
    parts = words(name)
    if not parts:
        return False
    if parts[-1] in _CREDENTIAL_WORDS:
        return True
    return parts[-1] == "key" and any(word in _KEY_QUALIFIERS for word in parts[:-1])


SECRET_KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
"""A secret's key: the templates read it as `.<key>.Value` (Nomad Variables) or
`.Data.data.<key>` (Vault), so it must be a Go template field name."""
_SECRET_KEY_RE = re.compile(SECRET_KEY_PATTERN)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY_RE.match(key))


def derived_key(section: str, key: str, taken: set[str]) -> str:
    """A secret key for `[section] key`, unlike any in `taken`: `[mail] password` ->
    mail_password, `[LoginLdap_corp] admin_pass` -> loginldap_corp_admin_pass."""
    base = re.sub(r"[^a-z0-9_]+", "_", f"{section}_{key}".lower()).strip("_") or "secret"
    if not base[0].isalpha():
        base = f"s_{base}"
    base = base[:120]
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def literal_fix(suggested_key: str) -> str:
    """How to write a credential that was given as a literal."""
    return (
        f'write it as {{ secret = "{suggested_key}" }} and store the value with matomo-nomad secrets init'
    )
