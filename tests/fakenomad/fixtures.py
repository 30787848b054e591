"""pytest fixtures for the fake Nomad server.

Not wired in by tests/conftest.py: a test module enables them with::

    pytest_plugins = ("tests.fakenomad.fixtures",)

(or conftest.py can list the module in its own ``pytest_plugins``).

Every fixture fails the test at teardown if the fake itself raised an
exception while answering (``FakeNomad.internal_errors``): a bug of the fake
must never pass for client behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .server import FakeNomad
from .tls import TLSMaterial, generate_tls_material


def _finish(fake: FakeNomad) -> None:
    fake.stop()
    if fake.internal_errors:
        pytest.fail("fake Nomad raised internally:\n" + "\n".join(fake.internal_errors), pytrace=False)


@pytest.fixture(scope="session")
def nomad_tls_material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    """Throwaway CAs and certificates for this test session (see tls.py)."""
    return generate_tls_material(tmp_path_factory.mktemp("fakenomad-tls"))


@pytest.fixture
def fake_nomad() -> Iterator[FakeNomad]:
    """A fake Nomad on http://127.0.0.1:<random port>."""
    fake = FakeNomad().start()
    try:
        yield fake
    finally:
        _finish(fake)


@pytest.fixture
def fake_nomad_tls(nomad_tls_material: TLSMaterial) -> Iterator[FakeNomad]:
    """A fake Nomad on https://127.0.0.1:<port>; trust ``fake.ca_path``."""
    fake = FakeNomad(tls=nomad_tls_material).start()
    try:
        yield fake
    finally:
        _finish(fake)


@pytest.fixture
def fake_nomad_mtls(nomad_tls_material: TLSMaterial) -> Iterator[FakeNomad]:
    """Like ``fake_nomad_tls`` but requires a client certificate signed by the
    test CA (``fake.client_cert`` / ``fake.client_key``)."""
    fake = FakeNomad(tls=nomad_tls_material, require_client_cert=True).start()
    try:
        yield fake
    finally:
        _finish(fake)


@pytest.fixture
def make_fake_nomad(nomad_tls_material: TLSMaterial) -> Iterator[Callable[..., FakeNomad]]:
    """Factory: ``make_fake_nomad(acl_token="s3cr3t", block_cap=None, tls=True)``.

    ``tls=True`` uses the session's test certificates. Every fake made is
    stopped (and checked) at teardown.
    """
    made: list[FakeNomad] = []

    def make(**kwargs: Any) -> FakeNomad:
        if kwargs.get("tls") is True:
            kwargs["tls"] = nomad_tls_material
        fake = FakeNomad(**kwargs).start()
        made.append(fake)
        return fake

    try:
        yield make
    finally:
        errors = []
        for fake in made:
            fake.stop()
            errors += fake.internal_errors
        if errors:
            pytest.fail("fake Nomad raised internally:\n" + "\n".join(errors), pytrace=False)
