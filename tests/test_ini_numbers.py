"""Numbers in config.ini.php: written bare, as PHP spells them, and read by Matomo as numbers.

Matomo's IniReader turns a value into a number only when `(string)($v + 0) === $v`, so a
float must be written as PHP's `(string)` cast writes it (1.0E-5, not 1e-05). One rule for
every number, the deployment file's settings and the ones matomo-nomad manages alike.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import tomllib
from typing import Any

import pytest

from matomo_nomad import Role, example_path, parse_deployment, render
from matomo_nomad._ini import php_number
from tests.deployments import secret_stubs
from tests.oracles.runner import execute_template, php_read_config

FLOATS = [1e-05, 0.25, 0.1, 1e15, 1e14, 1e13, -2.5e-07, 3.0, 0.0, 1.5e300, 123.456, 0.0001, 7e-05, 1 / 3]


def _php_strings(values: list[float]) -> list[str]:
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is not installed (apt-get install php-cli)")
    code = "foreach (json_decode($argv[1]) as $f) { echo (string)(float)$f, \"\\n\"; }"
    result = subprocess.run([php, "-r", code, json.dumps(values)], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_floats_are_spelled_as_php_casts_them_when_that_keeps_the_value() -> None:
    for value, php in zip(FLOATS, _php_strings(FLOATS), strict=True):
        if float(php) == value:
            assert php_number(value) == php, value
        else:
            # 14 significant digits cannot hold it (1/3): written exactly instead.
            assert php_number(value) == repr(value), value


def _minimal() -> dict[str, Any]:
    with open(example_path().parent / "minimal.toml", "rb") as handle:
        return tomllib.load(handle)


def test_matomo_reads_every_number_as_a_number(go_oracles) -> None:
    data = copy.deepcopy(_minimal())
    data["redis"]["timeout"] = 2.5
    data["settings"] = {
        "Numbers": {
            "whole": 7, "negative": -3, "small": 1e-05, "quarter": 0.25, "huge": 1e15, "zero": 0.0,
            "mixed": [1, 2.5, "x"], "third": 1 / 3, "text": "7",
        }
    }
    deployment = parse_deployment(data)
    rendered = render(deployment)[Role.admin]
    lines = set(rendered.config_template.splitlines())
    # Bare, like the booleans and like Matomo's own IniWriter; text stays quoted.
    assert {"whole = 7", "negative = -3", "small = 1.0E-5", "quarter = 0.25", "huge = 1.0E+15", "zero = 0",
            "mixed[] = 1", "mixed[] = 2.5", 'mixed[] = "x"', 'text = "7"'} <= lines
    assert {"port = 3306", "redisPort = 6379", "redisTimeout = 2.5", "numQueueWorkers = 1"} <= lines

    read = php_read_config(execute_template(go_oracles["tmplexec"], rendered.config_template, secret_stubs(deployment)))
    numbers = read["Numbers"]
    for key, value in {"whole": 7, "negative": -3, "small": 1e-05, "quarter": 0.25, "huge": 1e15}.items():
        assert numbers[key] == value and isinstance(numbers[key], type(value)), (key, numbers[key])
    assert numbers["zero"] == 0 and numbers["mixed"] == [1, 2.5, "x"]
    # No spelling makes PHP read 1/3 back exactly: the exact text, which PHP's == takes as that number.
    assert numbers["third"] == repr(1 / 3)
    # Matomo itself reads a quoted numeric string as a number too: text never decides the type.
    assert numbers["text"] == 7
    assert read["database"]["port"] == 3306 and read["QueuedTracking"]["redisTimeout"] == 2.5
    assert read["QueuedTracking"]["numQueueWorkers"] == 1
