"""Issue 16 point 9: the Finance desk as Finance works it.

* The ledger lists show each account's balance (the ledger's reading: debit-normal accounts with
  the sign turned) and the amount each posting moved, in the reader's locale.
* «Check status now» on needs-attention queues a status check of the payout's open attempt at
  once (the janitor's own job), and running it resolves the payout; a payout with nothing in
  flight is refused.
* The kill switch needs a reason in the browser (``required``) and asks for a confirmation
  (``data-confirm``) before the round trip; the server still refuses an empty reason.
* One decision control on every desk: a note and one button per decision (no select).
"""
from __future__ import annotations

import re

import sqlalchemy as sa

from portal.extensions import db
from portal.models import ProviderState
from portal.services import ledger
from portal.services.ledger import customer_account, system_account, transfer
from portal.tasks import payouts as jobs
from tests.integration.test_payout_desk import (SYSTEM, D, desk, in_review, state, text,  # noqa: F401 (fixture)
                                                unknown_payout)


def row_of(page: str, marker: str) -> str:
    match = re.search(r"<tr[^>]*>(?:(?!</tr>).)*%s(?:(?!</tr>).)*</tr>" % re.escape(marker), page, re.S)
    assert match, f"no row with {marker!r}"
    return match.group(0)


def test_ledger_lists_show_balances_and_posting_amounts(app, client, desk):
    with app.app_context():
        ledger.post(db.session, kind="test.fund", reference="fund:extra", actor=SYSTEM,
                    legs=transfer(system_account("network_receivable"), customer_account(1, "available"),
                                  D("12.345678")))
        db.session.commit()
    desk("fin1")
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "ru"
    accounts = text(client.get("/accountview/list/"))
    assert "Баланс" in accounts
    # 500 + 12.345678 available to customer 1; the network owes us the same (debit-normal, shown positive)
    assert "512,345678" in row_of(accounts, "Клиент №1</td>") or "512,345678" in accounts
    network = row_of(accounts, "Долг сети")
    assert "512,345678" in network and "-512" not in network
    postings = text(client.get("/postingview/list/"))
    assert "12,345678\xa0$" in row_of(postings, "fund:extra")
    assert "500,00\xa0$" in row_of(postings, "fund:1")


def test_check_status_now_queues_the_janitors_check_and_it_resolves_the_payout(app, client, desk, testbank):
    payout_id = unknown_payout(app, testbank)
    app.extensions.pop("cashback_collected_jobs", None)
    desk("fin1")
    page = text(client.get("/payouts/attention/"))
    panel = page[page.index(f'data-payout="{payout_id}"'):]
    assert f'/payouts/attention/{payout_id}/check' in panel and "Check status now" in panel
    response = client.post(f"/payouts/attention/{payout_id}/check", follow_redirects=True)
    assert response.status_code == 200 and "the provider is being asked about attempt 1 now" in text(response)
    queued = [job for job in app.extensions.get("cashback_collected_jobs", []) if job.func == jobs.CHECK]
    assert len(queued) == 1
    with app.app_context():
        assert jobs.check_attempt(*queued[0].args) == "succeeded"  # the sandbox had paid it
    assert state(app, payout_id) == "succeeded"
    # nothing in flight any more: nothing to ask about
    again = client.post(f"/payouts/attention/{payout_id}/check")
    assert again.status_code == 422 and "has no attempt waiting" in text(again)


def test_kill_switch_wants_a_reason_and_a_confirmation(app, client, desk):
    desk("fin1")
    page = text(client.get("/payouts/providers/"))
    form = re.search(r'<form[^>]*class="form-inline kill-switch"[^>]*action="/payouts/providers/test/disable"'
                     r'[^>]*>(.*?)</form>', page, re.S)
    assert form, "no kill switch form for test"
    assert 'data-confirm="Switch Test Bank (sandbox) off?' in form.group(0)
    assert re.search(r'<input[^>]*name="reason"[^>]*required', form.group(1))
    assert 'form[data-confirm]' in page and '#modal-confirm' in page  # the script that asks
    refused = client.post("/payouts/providers/test/disable", data={"reason": " "})
    assert refused.status_code == 422
    with app.app_context():
        assert db.session.execute(sa.select(ProviderState.enabled).where(ProviderState.code == "test")) \
            .scalar_one_or_none() in (None, True)


def test_every_decision_uses_the_same_control(app, client, desk):
    payout_id = in_review(app)
    desk("admin1", "Admin")
    for url in ("/payouts/review/", "/claims/credits/", "/support/referrals/", "/orders/attachments/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert 'select name="decision"' not in text(response), url
    review = text(client.get("/payouts/review/"))
    control = review[review.index(f'/payouts/review/{payout_id}/decide'):]
    control = control[:control.index("</form>")]
    assert 'name="decision" value="approve" class="btn btn-success' in control
    assert 'name="decision" value="reject" class="btn btn-danger' in control
