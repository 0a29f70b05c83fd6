"""WebMoney: the ``webmoney`` payout provider, paying RUB to WebMoney **P purses (WMP)** with
interface **X2** (transfer) and **X3** (operations, for the status by ``tranid``)
(reference: ``provider-protocols.md`` §3, §5, §6).

Run the local emulator with ``python -m payment_providers.webmoney.sandbox --port 8768``; the
provider's default settings point at it (``http://127.0.0.1:8768``, WMID ``100000000001``, purse
``P100000000001``, test signer key ``sandbox-wm-key``), so an unconfigured install never
reaches WebMoney.

Protocol [doc: baibaratsky/php-webmoney, WebMoney wiki]
-------------------------------------------------------
XML over HTTPS, bodies in Windows-1251.

* X2 ``POST /asp/XMLTrans.asp`` (classic: WMSigner ``sign``) or ``/asp/XMLTransCert.asp``
  ("Light": TLS client certificate, no ``sign``). Body ``w3s.request{reqn, wmid, sign,
  trans{tranid, pursesrc, pursedest, amount, period, pcode, desc, wminvid, onlyauth}}`` with
  ``period=0``, empty ``pcode``, ``wminvid=0``. Signing string: reqn + tranid + pursesrc +
  pursedest + amount + period + pcode + desc + wminvid. Answer ``w3s.response{reqn, retval,
  retdesc, operation id=<wmtranid>{tranid, pursesrc, pursedest, amount, comiss, opertype, …}}``;
  X2 is synchronous: retval 0 = done.
* X3 ``POST /asp/XMLOperations.asp`` (Light: ``XMLOperationsCert.asp``) with
  ``getoperations{purse, wmtranid, tranid, wminvid, orderid, datestart, datefinish}``; signing
  string purse + reqn. ``opertype`` 0 completed, 4 protected not completed, 12 protected refunded.
* ``tranid`` (our unsigned integer, unique per sender) makes X2 idempotent: it comes from
  ``handles.number_for("webmoney", key)``, committed before the call. ``reqn`` must strictly
  increase per WMID: it comes from ``handles.next_counter("webmoney", "reqn")`` (shared by every
  worker), never from the clock.

Retvals (X2) -> normalized result
---------------------------------
==========================================  ============================================
retval                                      result
==========================================  ============================================
0                                           succeeded (fee = ``comiss``)
102 reqn not increasing                     repeat at once: new reqn, same tranid (up to
                                            ``reqn_attempts``; then failed_retryable/config)
103 tranid already used                     X3 by tranid: same purse and amount ->
                                            succeeded; other data -> failed_final /
                                            duplicate_conflict; no answer -> unknown
4, 15, 19, 23 internal errors, undocumented unknown (status() reads X3; not found -> the
                                            engine resubmits the same tranid)
17                                          failed_retryable / insufficient_funds
6, 7, 26, 29, 30, −5                        failed_final / invalid_account
13, −6                                      failed_final / amount_too_small
35                                          failed_final / rejected_by_recipient
58                                          failed_final / recipient_limit
73, 74                                      failed_final / identification_required
−2, −12, −14, −15, 5                        failed_retryable / auth (pauses the provider)
−100, −110, −1, −3, −4, −7…−11, 11, 18,     failed_retryable / config (pauses the provider)
20–22, 25, 32, 34, 72, 110, 111
HTTP 5xx, timeout, dropped, garbled         unknown (same tranid; resolve with status())
HTTP 429 / other 4xx                        failed_retryable / rate_limited / config
connection refused                          failed_retryable / provider_unavailable
==========================================  ============================================

``status()`` only reads X3 (never transfers): opertype 0 -> succeeded, 4 -> pending,
12 -> reversed; nothing for our tranid -> unknown / not_found; any failure -> unknown.

Purses
------
A letter and 12 digits (spaces, dashes, lower case and a ``WM`` prefix are tolerated); the
letter must be the purse type of the payout currency (``purse_types``, ``{"RUB": "P"}``).
Reason codes: ``empty``, ``wmid`` (12 digits: a WMID, not a purse), ``format``, ``retired``
(R: replaced by P from 2019-08-01), ``currency`` (any other type, incl. credit C/D).

Signers
-------
``signer="light"`` (:class:`~.client.LightCertSigner`, real use): Light endpoints, no ``sign``,
the request carries the WMID's client certificate (``credentials.cert_file``, ``key_file``,
optional ``ca_bundle``). ``signer="test"`` (:class:`~.client.TestSigner`, sandbox only, allowed
for loopback ``base_url`` only): HMAC-SHA256 hex of the signing string in Windows-1251 with
``credentials.test_key``. Classic WMSigner (key file) is not implemented: plug a
:class:`~.client.Signer` in if needed.

Magic purses (sandbox)
----------------------
``P90`` + the retval in 10 digits forces a positive retval (``P900000000017`` -> 17,
``P900000000058`` -> 58, ``P900000000004`` -> 4, …), ``P91`` + 10 digits a negative one
(``P910000000014`` -> −14). Every documented retval but 0, 102 and 103 has one
(:data:`~.sandbox.MAGIC_PURSES`); those three come from behaviour (a normal purse, a reqn not
above the last one, a repeated tranid). The sandbox also answers 26 (same purse), 29 (other
type), 30 (C/D), 17 (its balance), 111 (a source purse not its own), −14 (bad signature),
−12 (other WMID); the base switchboard injects latency, drops, 5xx, garbage, 429 and downtime.

Behind configuration ([?] = not verified in the stored material)
---------------------------------------------------------------
* ``base_url``, ``signer``, ``credentials`` (``wmid``, ``purse``, ``cert_file``, ``key_file``,
  ``ca_bundle`` | ``test_key``).
* ``fee_percent`` "0.8", ``fee_min`` "0.01" [doc]; ``fee_max`` (None: the WMP cap was not
  found; 50 WMZ / 50 WME documented) [?]; ``fee_rounding`` ROUND_HALF_UP to 0.01 [?].
* ``min_amount`` "1.00", ``max_amount`` "15000.00" [?: per contract / identification level].
* ``purse_types`` ``{"RUB": "P"}``; ``onlyauth`` True; ``reqn_attempts`` 5;
  ``lookback_days`` 90 (X3 window) [?]; ``default_description``.
* Unverified, not configurable [?]: Light requests still carry ``wmid``; ``desc`` ≤ 255
  characters, ``tranid`` ≤ 2^32−1 (sandbox); the X3 retval for a foreign purse; opertype 12 as
  the sign of a returned payout; the request content type ``text/xml; charset=windows-1251``;
  X3 dates read as UTC (the window is wide enough for Moscow time).
* Not implemented: X8 purse lookup (``verify_account``) and X9 balance (``supports_balance``
  False); callbacks (WebMoney sends none for X2).
"""
