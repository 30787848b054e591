"""A fake Nomad HTTP API server for matomo-nomad's tests.

Use
---
``FakeNomad(**options)`` (server.py) is a real ``ThreadingHTTPServer`` on
127.0.0.1 with a random free port, served from a background thread, one
thread per connection (a blocking query never holds up other requests)::

    with FakeNomad(acl_token="s3cr3t") as fake:
        client = NomadClient(ConnectionSettings(address=fake.address, token="s3cr3t"))
        ...
        assert fake.last_request(r"^/v1/jobs$", "POST").json["EnforceIndex"] is True

Fixtures (fixtures.py; a test module enables them with
``pytest_plugins = ("tests.fakenomad.fixtures",)``): ``fake_nomad`` (HTTP),
``fake_nomad_tls`` (HTTPS, trust ``fake.ca_path``), ``fake_nomad_mtls``
(client certificate required: ``fake.client_cert``/``fake.client_key``),
``make_fake_nomad(**options)`` (a factory; ``tls=True`` for the test
certificates) and the session's ``nomad_tls_material``. Each fixture fails
the test if the fake raised internally.

Options and knobs (attributes, changeable while running): ``acl_token``,
``block_cap`` (longest blocking wait, default 1 s; None = Nomad's 300 s),
``jitter``, ``tick`` (scheduler step, default 0.05 s), ``default_outcome``,
``warnings``, ``namespaces``, ``region``, ``unknown_path_body``,
``placement_hook``; constructor-only: ``tls``, ``require_client_cert``.

Scripting the cluster: ``progress(job_id, "successful"|"failed"|"deadline"|
"running", steps=[...], interval=0.05|None, failure={...})``,
``advance(job_id, steps)``, ``fail_placement(group, job_id, metrics=...)``,
``wait_for_deployment(job_id)``, ``put_variable(path, items)``; batch jobs:
``batch_outcome(job_id, "complete"|"failed"|"running", failure=..., runs_for=s)``
(for a periodic job, its launches), ``finish_batch(job_id)``,
``launch_periodic(job_id)`` (the dispatcher's launch; refused while disabled),
``stop_delay(job_id, s|None)`` (how long a stop takes; None: never); reading it:
``job()``, ``job_versions()``, ``deployment()``, ``deployments()``,
``allocations()``, ``variable()``, ``index``.

Faults: ``add_latency(s, path)``, ``fail(path, status, body)``,
``hang(path)``, ``drop(path)``, ``truncate(path)``, ``non_json(path)``,
``redirect(path, location)``, generic ``inject(kind, ...)`` with
``method=``, ``times=``, ``skip=``, ``job=`` (only requests whose body's
``Job.ID`` is that job); ``clear_faults()``, ``release_hangs()``.
Paths are regular expressions searched in the request path.

Recording: ``requests`` (every request: method, path, target, query,
headers, body, json, token, namespace, region, blocking/index/wait, sni,
client_cert_cn, status, fault, duration), ``requests_to(regex, method)``,
``last_request(...)``, ``count(regex, method, blocking=)``,
``query_stats(regex)`` (blocking vs non-blocking per path),
``clear_requests()``.

``generate_tls_material(dir)`` (tls.py): a test CA, a server certificate
for 127.0.0.1, ::1, localhost and server.global.nomad, a client certificate,
and an unrelated CA with its own server and client certificates.

Faithful to Nomad (sources cited in server.py)
----------------------------------------------
Routing and methods (405 "Invalid method"), error bodies (text/plain with a
status; RPC errors such as EnforceIndex conflicts, validation and variable
path errors are 500), X-Nomad-Index/KnownLeader/LastContact where Nomad sets
them (not on agent/self, status/leader, validate), namespace and region
precedence (?namespace= beats Job.Namespace for jobs; the body's Namespace
beats ?namespace= for variables), ACL messages, EnforceIndex semantics and
messages, unchanged-spec registers (no new version, a new eval; for periodic
jobs no eval and Index 0), versions/Stable/Stop/purge, job status rules
(pending/running/dead from allocations and evals), submissions per version,
the plan response and its index, the diff's shape, deployments (status
descriptions, cancelled by a newer version or a stop, auto-revert to the last
stable version), blocking queries (index rules, 300 s default and maximum,
wait/16 jitter, the table indexes Nomad reports), variables (CAS, the 409
body with its sniffed text/plain type, unchanged writes, path rules), the
301 for unclean paths such as //v1/jobs, the empty 404 of unknown paths, the
400 Go sends for plain HTTP on the TLS port.

Simplified
----------
No real scheduler: allocations follow a per-job script (no rescheduling of
failed allocations; canaries roll like ordinary updates, no promotion).
Jobs are canonicalized only as far as the fake needs (Nomad fills many more
defaults), so GET returns roughly what was submitted. Validation covers a
few checks. The diff is structural (list elements paired by Name/Label or
position; unchanged string sets not listed for context). JSON decode error
texts approximate Go's. Known Nomad endpoints the fake lacks answer 501.
"""

from .server import FakeNomad, Fault, RecordedRequest, cron_next, job_diff
from .tls import TLSMaterial, generate_tls_material

__all__ = [
    "FakeNomad",
    "Fault",
    "RecordedRequest",
    "TLSMaterial",
    "cron_next",
    "generate_tls_material",
    "job_diff",
]
