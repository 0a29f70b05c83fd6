"""Test Bank: the built-in ``test`` payout provider, for the engine's tests and the demo.

It pays RUB (1.00 to 15 000.00 per payout) to Test Bank wallets over a small JSON protocol
served by :class:`~payment_providers.testbank.sandbox.TestBankSandbox`. Run one for the demo
with ``python -m payment_providers.testbank.sandbox --port 8765``.

Wallet numbers
--------------
``TEST-`` followed by 8 digits: a 7-digit body and a Luhn check digit, so a single mistyped digit
or most swaps of neighbouring digits are caught before any money moves. The check digit makes
the Luhn sum of all 8 digits a multiple of 10: from the right end of the body, double every
other digit starting with the last one, subtract 9 from results above 9, add everything up;
the check digit is ``(10 - sum % 10) % 10``. Example: body ``1234567`` -> ``TEST-12345674``.
Input is forgiving: case, spaces and dashes are ignored, so ``test 1234 5674`` is fine.

Magic wallets (body ``99000NN``) force each outcome the recipient side can produce:

==================  =============================================  ==========================
wallet              what Test Bank does                            normalized result
==================  =============================================  ==========================
``TEST-99000010``   fails at once: ``wallet_not_found``            failed_final / invalid_account
``TEST-99000028``   fails at once: ``wallet_blocked``              failed_final / account_blocked
``TEST-99000036``   fails at once: ``identification_required``     failed_final / identification_required
``TEST-99000044``   fails at once: ``recipient_limit_exceeded``    failed_final / recipient_limit
``TEST-99000051``   pending, then fails: ``rejected_by_payee``     failed_final / rejected_by_recipient
``TEST-99000069``   fails at once: ``general_decline``             failed_final / declined
``TEST-99000077``   fails at once: ``insufficient_funds``          failed_retryable / insufficient_funds
``TEST-99000085``   fails at once: ``daily_limit_exceeded``        failed_retryable / sender_limit
``TEST-99000093``   HTTP 401 (as if our credentials were revoked)  failed_retryable / auth
``TEST-99000101``   HTTP 403 ``payouts_disabled``                  failed_retryable / config
``TEST-99000119``   stays ``processing`` for ever                  pending
==================  =============================================  ==========================

Amounts force ``amount_too_small`` / ``amount_too_large`` (outside 1.00-15 000.00); reusing a key
with other data forces ``duplicate_conflict``; the sandbox's fault switchboard forces
``rate_limited``, ``provider_unavailable``, ``timeout`` and the ``unknown`` outcomes.

Protocol
--------
HTTP Basic auth (merchant login and password) on every call; JSON bodies; amounts are strings
with exactly two decimals; errors are ``{"error": {"code": ..., "message": ...}}``.

* ``POST /payouts`` with header ``Idempotency-Key`` (1-64 of ``A-Za-z0-9._:-``) and body
  ``{"amount": "100.00", "currency": "RUB", "account": "TEST-12345674", "description": "...",
  "metadata": {...}}``. 201 with the payout object when new; 200 with the stored payout for a
  replay of the same key and data; 409 ``idempotency_conflict`` for the same key with another
  amount, currency or account; 400 malformed request; 401 bad credentials; 403
  ``payouts_disabled``; 422 ``invalid_wallet`` / ``amount_below_minimum`` / ``amount_above_maximum``;
  429 with ``Retry-After``.
* ``GET /payouts/<key>``: 200 with the payout object, 404 ``not_found``.
* ``GET /balance``: ``{"currency": "RUB", "available": "98765.43"}``.

The payout object: ``{"id": "tbp_…", "idempotency_key", "status": "processing" | "succeeded" |
"failed" | "reversed", "amount", "fee", "currency", "account", "failure": null | {"code",
"message"}, "created_at", "updated_at"}``. The fee is 1 % of the amount, rounded half up to the
kopeck, debited from our balance on top of the amount.

Notifications: when asked (``POST /__sandbox__/callback/<key>``), Test Bank POSTs
``{"event": "payout.updated", "payout": {...}}`` with header
``X-TestBank-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook secret>``.
"""
