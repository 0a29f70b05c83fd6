"""Schemathesis against the published OpenAPI of ``/api/v1``: the customer API, withdrawals,
claims and the network postback, called in-process (Flask test client) as customer Anna.

For every generated request (valid ones and deliberately broken ones):

* no 5xx;
* every 4xx is the one JSON error shape (``portal.errors.error_body``) with its own status;
* the response's status is one the operation documents (schemathesis' ``status_code_conformance``);

and after the whole run, customer Boris' orders, clicks, payout details, withdrawals, claims
and balances are exactly as before — whatever Anna sent, with his ids mixed into the paths.

Bounded for CI: a few examples per operation and mode, derandomized (the same cases each run).
Postback bodies generated from the schema are signed with the network's secret so that the
event itself is fuzzed, not only the signature check.
"""
from __future__ import annotations

import json
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from schemathesis import GenerationMode
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import status_code_conformance

from portal.services.postback_signing import sign
from tests.fuzz.conftest import victim_snapshot

#: The operations under test: the customer API, withdrawals, claims, the postback, provider callbacks.
FUZZED_PATHS = r"^/api/v1/(me/|clicks|links/|network/postback|providers/)"
POSTBACK = "/api/v1/network/postback"
SECRET = b"dev-postback-secret"  # config.DEFAULT_POSTBACK_SECRETS (network epn)
ERROR_KEYS = {"ok", "status", "error", "errors"}
#: examples per operation and generation mode; the whole test stays well under a minute
EXAMPLES = 25
#: The operations are fuzzed in this many tests (operation i in shard i % SHARDS, by label), each
#: with customers of its own: parallel workers (pytest-xdist) run them at the same time.
SHARDS = 4


def assert_error_shape(status: int, body, label: str) -> None:
    assert isinstance(body, dict), f"{label}: {status} without a JSON body"
    assert set(body) == ERROR_KEYS, f"{label}: {status} not in the one error shape: {body}"
    assert body["ok"] is False and body["status"] == status, f"{label}: {body}"
    assert isinstance(body["error"].get("code"), str) and body["error"]["code"], f"{label}: {body}"
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"], f"{label}: {body}"
    assert isinstance(body["errors"], list), f"{label}: {body}"


def _request(case, auth: dict[str, str]) -> dict:
    """Werkzeug test-client arguments for a case; postbacks are signed over the exact bytes."""
    kwargs = case.as_transport_kwargs(headers=dict(auth))
    if case.path == POSTBACK:
        kwargs["headers"].pop("Authorization", None)
        if case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE \
                and not isinstance(case.body, NotSet):
            raw = json.dumps(case.body).encode()
            kwargs.pop("json", None)
            kwargs["data"] = raw
            kwargs["headers"].update(sign(SECRET, raw, int(time.time())))
            kwargs["headers"]["X-Cashback-Network"] = "epn"
            kwargs["headers"]["Content-Type"] = "application/json"
    return kwargs


def test_published_spec_covers_the_fuzzed_api(published_spec):
    """Every fuzzed operation documents its body or parameters and the error shape."""
    paths = {p: ops for p, ops in published_spec["paths"].items() if p.startswith("/api/v1/")}
    expected = {("/api/v1/links/check", "post"), ("/api/v1/clicks/", "post"), ("/api/v1/me/balance", "get"),
                ("/api/v1/me/orders", "get"), ("/api/v1/me/clicks", "get"), ("/api/v1/me/payout-methods", "get"),
                ("/api/v1/me/payout-details", "get"), ("/api/v1/me/payout-details", "post"),
                ("/api/v1/me/withdrawals", "get"), ("/api/v1/me/withdrawals", "post"),
                ("/api/v1/me/withdrawals/{payout_id}/cancel", "post"), ("/api/v1/me/claims", "get"),
                ("/api/v1/me/claims", "post"), ("/api/v1/me/claims/{claim_id}", "get"), (POSTBACK, "post")}
    found = {(p, m) for p, ops in paths.items() for m in ops if m in ("get", "post")}
    missing = {(p.rstrip("/"), m) for p, m in expected} - {(p.rstrip("/"), m) for p, m in found}
    assert not missing, missing
    for path, method in found:
        operation = paths[path][method]
        if method == "post" and not path.startswith("/api/v1/security"):
            assert "requestBody" in operation or path == POSTBACK, (path, method)
        if path.startswith("/api/v1/me/"):
            assert "401" in operation["responses"], (path, method)


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS))
def test_fuzz_customer_and_postback_api(app, published_spec, two_customers, shard):
    anna, boris = two_customers.anna, two_customers.boris
    before = victim_snapshot(app, boris.id)
    schema = schemathesis.openapi.from_dict(published_spec).include(path_regex=FUZZED_PATHS)
    schema.app = app
    client = app.test_client()
    victim_ids = {"payout_id": boris.payout_id, "claim_id": boris.claim_id}
    every = sorted((result.ok() for result in schema.get_all_operations()), key=lambda op: op.label)
    assert len(every) >= 14, [op.label for op in every]
    operations = every[shard::SHARDS]  # the shards together: every operation, each once
    tried: dict[str, set[int]] = {}
    sent = [0]

    for operation in operations:
        own_params = {name: value for name, value in victim_ids.items() if "{" + name + "}" in operation.path}
        strategies = [operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                      operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)]
        strategies += schema.get_strategies_from_examples(operation)  # the spec's examples: valid requests
        if own_params:  # Boris' real ids in Anna's requests
            strategies.append(operation.as_strategy(generation_mode=GenerationMode.POSITIVE,
                                                    path_parameters=own_params))

        @settings(max_examples=EXAMPLES * len(strategies), derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=st.one_of(*strategies))
        def run(case) -> None:
            response = client.open(**_request(case, {**anna.auth, "Accept-Language": "en"}))
            label = f"{case.method} {case.formatted_path}"
            tried.setdefault(operation.label, set()).add(response.status_code)
            sent[0] += 1
            assert response.status_code < 500, f"{label}: {response.status_code} {response.get_data(as_text=True)[:300]}"
            if response.status_code >= 400:
                assert_error_shape(response.status_code, response.get_json(silent=True), label)
            case.validate_response(response, checks=[status_code_conformance])

        run()

    assert set(tried) == {op.label for op in operations}
    assert sent[0] >= len(operations) * EXAMPLES, sent  # every operation got its examples
    print(f"fuzzed {len(operations)} operations with {sent[0]} requests: {tried}")
    # the fuzzer reached past the auth layer: some requests were accepted
    assert any(code < 300 for codes in tried.values() for code in codes), tried
    assert victim_snapshot(app, boris.id) == before
