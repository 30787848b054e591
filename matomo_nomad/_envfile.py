"""Secrets as environment variables: a Nomad `template` with `env = true`.

The job never holds the value. Nomad renders the template into a file in the task's
secrets/ directory, then reads that file back as `KEY=value` lines with
hashicorp/go-envparse (client/allocrunner/taskrunner/template/template.go,
loadTemplateEnv -> envparse.Parse, in Nomad 1.6.0 to 2.0.5; go-envparse is pinned at
310ca18 up to 1.8 and at v0.1.0 from 1.9, whose value parsing is the same) and
sets each pair as it is: template variables are not interpolated
(client/taskenv/env.go 1.6.10, buildEnv copies templateEnv unchanged, after the job's
`env`, which they override).

go-envparse v0.1.0 (envparse.go, parseLine) reads a double-quoted value with JSON's
escapes (`\\"`, `\\\\`, `\\/`, `\\b`, `\\f`, `\\n`, `\\r`, `\\t`, `\\uXXXX`) and refuses any byte
below 0x20 written raw, inside quotes too; bytes from 0x7F up pass through. So each value
is written `NAME="..."` with `\\` and `"` escaped and every control character but NUL
escaped; the line is then one line whatever the secret holds, and reads back exactly.
NUL cannot be in an environment variable at all (execve's strings end at it): it is
left raw, so go-envparse refuses the file and Nomad fails the task with "error
parsing env template ...: 0x00 is an invalid value character" instead of passing on a
truncated value. An empty value is an empty variable (v0.1.0's Parse keeps it).

As with config.ini.php (`_ini`), the values are unknown until the template runs, so the
escaping is done there by consul-template's `replaceAll`, in one `define`d template;
the table is kept here once. Nomad refuses `change_mode = "signal"` for env templates
(nomad/structs/structs.go 1.6.10, Template.Validate): the task restarts when a value changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._consul_template import go_string, replace_all_define, replace_each

if TYPE_CHECKING:
    from ._roles import RoleJob

_SHORT = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}

# `\` first, so the backslashes the other escapes introduce are not escaped again.
ENV_ESCAPES: tuple[tuple[str, str], ...] = (("\\", "\\\\"), ('"', '\\"')) + tuple(
    (chr(code), _SHORT.get(chr(code), f"\\u{code:04x}")) for code in range(1, 0x20)
)

ENCODER_NAME = "matomo_env_value"
DESTINATION = "secrets/matomo-nomad.env"
"""Under secrets/, which Nomad never writes to the client's disk in the clear."""


ENCODER_DEFINITION = replace_all_define(ENCODER_NAME, ENV_ESCAPES)


def encode_value(value: str) -> str:
    """What the template writes between the double quotes for `value`."""
    return replace_each(value, ENV_ESCAPES)


def env_template(opening: str, item: str, variables: Mapping[str, str]) -> str:
    """The template's text: one `NAME="<encoded secret>"` line per variable.

    `opening` and `item` are the secret source's (`_roles.SecretSource`): the block that
    reads the store and the expression for one key in it. Names are environment variable
    names (the model's EnvName), which go-envparse takes as keys unchanged."""
    lines = [
        f'{name}="{{{{ template {go_string(ENCODER_NAME)} {item.format(key=key)} }}}}"\n'
        for name, key in variables.items()
    ]
    return ENCODER_DEFINITION + "\n" + opening + "\n" + "".join(lines) + "{{ end -}}\n"


def for_job(job: "RoleJob") -> str | None:
    """A role's env template, or None when it reads no secret into its environment."""
    if not job.secret_env:
        return None
    return env_template(job.secrets.opening, job.secrets.item, job.secret_env)
