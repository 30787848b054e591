"""The Jinja environment every template in the package is read with.

One set of delimiters everywhere: nomad-pack's `[[ ]]`, `[% %]`, `[# #]`, which none of
the target languages uses (HCL and consul-template use `{ }`; sh, make and Dockerfiles
use neither). Templates only lay out text: callers pass values already escaped, and
the filters for the target language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jinja2


def environment(folder: str, filters: dict[str, Callable[..., Any]]) -> jinja2.Environment:
    """An environment over `matomo_nomad/<folder>`; cache it at the call site."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("matomo_nomad", folder),
        block_start_string="[%",
        block_end_string="%]",
        variable_start_string="[[",
        variable_end_string="]]",
        comment_start_string="[#",
        comment_end_string="#]",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        # Templates ship inside the package and do not change while it runs.
        auto_reload=False,
    )
    env.filters.update(filters)
    return env
