"""YooMoney (ЮMoney, ex-Yandex.Money): the ``yoomoney`` payout provider, paying RUB to YooMoney
wallets through **YooKassa API v3 payouts** (reference: ``provider-protocols.md`` §1.1, §1.4, §5, §6).

Run the local emulator with ``python -m payment_providers.yoomoney.sandbox --port 8766``; the
provider's default settings point at it (``http://127.0.0.1:8766/v3``, shop id ``sandbox-shop``,
secret key ``test_sandbox-secret``), so an unconfigured install never reaches the live API.

Protocol (YooKassa API v3) [doc]
--------------------------------
Base ``https://api.yookassa.ru/v3``; JSON; HTTP Basic auth = gateway (shop) id : secret key.

* ``POST /v3/payouts`` with header ``Idempotence-Key`` = our idempotency key and body
  ``{"amount": {"value": "100.00", "currency": "RUB"}, "payout_destination_data": {"type":
  "yoo_money", "account_number": "4100116075156746"}, "description": "...", "metadata": {...}}``.
  Repeating the same request with the same key returns the original result.
* ``GET /v3/payouts/{id}`` reads a payout by YooKassa's id.
* The payout object: ``id``, ``amount{value, currency}``, ``status`` (``pending`` | ``succeeded``
  | ``canceled``), ``payout_destination``, ``description``, ``created_at``, ``succeeded_at``,
  ``test``, ``metadata``, ``cancellation_details{party, reason}``.
* Errors: ``{"type": "error", "id", "code", "description", "parameter"}`` with HTTP 400
  ``invalid_request``, 401 ``invalid_credentials``, 403 ``forbidden``, 404 ``not_found``, 405,
  415, 429 ``too_many_requests``, 500 ``internal_server_error``.

Mapping to the contract:

==============================  =============================================================
YooKassa answer                 normalized result
==============================  =============================================================
200 ``succeeded``               succeeded
200 ``pending``                 pending (poll: ``status()``)
200 ``canceled`` + reason       ``one_time_limit_exceeded`` / ``periodic_limit_exceeded`` ->
                                failed_final / recipient_limit; ``general_decline``,
                                ``fraud_suspected`` -> failed_final / declined;
                                ``rejected_by_payee`` -> failed_final / rejected_by_recipient;
                                ``insufficient_funds`` -> failed_retryable / insufficient_funds;
                                any other reason -> failed_final / declined
400, parameter Idempotence-Key  failed_final / duplicate_conflict (same key, other data) [?]
400, parameter account_number   failed_final / invalid_account
400 other                       failed_retryable / config (pauses the provider)
401                             failed_retryable / auth (pauses the provider)
403, 404, 405, 415              failed_retryable / config (pauses the provider)
429                             failed_retryable / rate_limited (``Retry-After`` if present)
500, other 5xx, timeout,        unknown: resolve with ``status()`` under the same key
dropped or garbled answer
connection refused              failed_retryable / provider_unavailable (nothing was sent)
==============================  =============================================================

``status(key, request)``: YooKassa's GET needs *its* payout id, so the documented check is to
repeat the **same** POST with the **same** ``Idempotence-Key`` and data, which returns the
original result (or creates the payout if the first attempt never arrived: same handle, so it
pays at most once). When this process already knows the payout id it uses ``GET`` instead.
In ``status()`` every transport failure and HTTP refusal is ``unknown`` (it says nothing about
the payout); without a request and a known id the answer is ``unknown`` / ``not_found``.

Wallet numbers [doc length, published algorithm]
------------------------------------------------
11-20 digits; spaces and dashes are ignored. The number is N·X·Y·Z: N = first digit (1-9) =
length of X, X = processing-centre code, Z = the last two digits, Y = the rest (at most 20
digits). Z must equal the redundancy of X and Y: Y's digits from the least significant end,
zero-padded to 20, then X's padded to 10; every 0 counts as 10; the k-th digit is weighted by
13^(k+2) mod 99; Z = (sum mod 99) + 1, two digits (so Z is never ``00``).

Magic wallets
-------------
YooKassa's test gateway wallets [doc], honoured by the sandbox:

=====================  ==========================================  ===========================
wallet                 sandbox                                     normalized result
=====================  ==========================================  ===========================
``41001614575714``     pending, then succeeded (anonymous)         succeeded
``4100116075156746``   pending, then succeeded (named)             succeeded
``4100116074720387``   pending, then succeeded (identified)        succeeded
``41001614575572``     canceled ``one_time_limit_exceeded``        failed_final / recipient_limit
``41001614575643``     canceled ``periodic_limit_exceeded``        failed_final / recipient_limit
``410011806060766``    canceled ``insufficient_funds``             failed_retryable / insufficient_funds
``410011788545536``    canceled ``general_decline``                failed_final / declined
=====================  ==========================================  ===========================

Sandbox-only wallets (valid check digits; no YooKassa test wallet exists for these):
``410019990000110`` canceled ``fraud_suspected`` (declined), ``410019990000280`` canceled
``rejected_by_payee`` (rejected_by_recipient), ``410019990000351`` HTTP 403 (config),
``410019990000422`` HTTP 401 (auth), ``410019990000592`` stays ``pending`` for ever.
Every other valid wallet succeeds. The fault switchboard of :mod:`plugins.sandbox` forces
``rate_limited``, ``provider_unavailable``, ``timeout`` and the ``unknown`` outcomes.

Behind configuration ([?] = not verified in the stored material)
---------------------------------------------------------------
* ``base_url`` / ``credentials`` (``shop_id``, ``secret_key``): the live API is
  ``https://api.yookassa.ru/v3``.
* ``fee_percent`` / ``fee_fixed`` (decimal strings, default 0): the tariff is per contract and
  not returned by the API, so ``quote()`` uses them.
* ``wallet_prefixes`` (default ``("4100",)``; ``()`` turns it off): required leading digits.
  The published check digits cannot catch a changed *first* digit (N re-parses the number:
  ``21001614575714`` passes the bare algorithm), and every real wallet number starts with 4100
  [doc: "41001…, 41003…"]. Validation reason codes: ``empty``, ``format``, ``length``,
  ``prefix``, ``check_digit``.
* ``idempotence_conflict_parameter`` (default ``Idempotence-Key``): the ``parameter`` of the 400
  ``invalid_request`` answer to a reused key with other data [?].
* Not configurable but unverified [?]: the sandbox's ``cancellation_details.party`` values for
  ``rejected_by_payee``/``fraud_suspected``, the 405/415 ``code`` strings, description and
  metadata size limits (128 characters; 16 pairs, keys <= 32, values <= 512), whether a 429
  carries ``Retry-After`` (parsed when present), and ``payout.succeeded`` / ``payout.canceled``
  notifications (not used: ``supports_callbacks`` is False; poll instead).
* YooKassa v3 has no ``reversed`` payout status and no payout balance call in the stored
  material: the provider never reports ``reversed`` and ``supports_balance`` is False.
"""
