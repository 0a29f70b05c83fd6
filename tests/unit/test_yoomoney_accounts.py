"""YooMoney wallet validation: length, digits, normalization and the published check digits."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payment_providers.yoomoney.client import account_number_redundancy, check_wallet, make_wallet
from payment_providers.yoomoney.provider import YooMoneyProvider
from plugins import ErrorCode, InvalidAccount

#: YooKassa's test gateway wallets (reference §1.1): all carry valid check digits.
YOOKASSA_TEST_WALLETS = [
    "41001614575714", "4100116075156746", "4100116074720387", "41001614575572",
    "41001614575643", "410011806060766", "410011788545536",
]


@pytest.fixture(scope="module")
def provider() -> YooMoneyProvider:
    return YooMoneyProvider()


def _reason(provider: YooMoneyProvider, raw: str) -> str:
    with pytest.raises(InvalidAccount) as caught:
        provider.validate_account(raw)
    assert caught.value.code is ErrorCode.INVALID_ACCOUNT
    text = str(caught.value.message)
    assert text and "%(" not in text
    return caught.value.reason_code


@pytest.mark.parametrize("wallet", YOOKASSA_TEST_WALLETS)
def test_yookassa_test_wallets_are_valid(provider: YooMoneyProvider, wallet: str) -> None:
    assert check_wallet(wallet) is None
    assert provider.validate_account(wallet) == wallet


@pytest.mark.parametrize(("raw", "normalized"), [
    ("4100 1160 7515 6746", "4100116075156746"),
    ("4100-1160-7515-6746", "4100116075156746"),
    ("  41001614575714\n", "41001614575714"),
    ("41001-614575-714", "41001614575714"),
    ("4100\t1160 - 7472 0387", "4100116074720387"),
])
def test_spaces_and_dashes_are_ignored(provider: YooMoneyProvider, raw: str,
                                       normalized: str) -> None:
    assert provider.validate_account(raw) == normalized
    assert provider.validate_account(normalized) == normalized


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty"),
    ("   ", "empty"),
    (" - - ", "empty"),
    ("4100116075156747", "check_digit"),      # last digit changed
    ("4100116075156756", "check_digit"),      # a digit of Y changed
    ("4100216075156746", "check_digit"),      # a digit of X changed
    ("4100161075156746", "check_digit"),      # two neighbours swapped
    ("41001614575700", "check_digit"),        # Z = 00 is never valid
    ("4100", "length"),
    ("4100116075", "length"),                 # 10 digits
    ("410011607515674600001", "length"),      # 21 digits
    ("4100116O75156746", "format"),           # letter O
    ("41001-1607-5156-74a", "format"),
    ("+4100116075156746", "format"),
    ("4100116075156746.", "format"),
    ("４１００１１６０７５１５６７４６", "format"),  # full-width digits
    ("01001614575714", "prefix"),             # N = 0
    ("51001614575714", "prefix"),
    ("21001614575714", "prefix"),             # passes the bare algorithm (see below)
])
def test_invalid_wallets(provider: YooMoneyProvider, raw: str, reason: str) -> None:
    assert _reason(provider, raw) == reason


def test_redundancy_counts_zero_as_ten() -> None:
    """Padding zeros count as 10, so the result depends on X/Y lengths, not just on digits."""
    assert account_number_redundancy("1001", "6145757") == "14"
    assert account_number_redundancy("1001", "160751567") == "46"
    assert make_wallet("1001", "6145757") == "41001614575714"
    assert all(1 <= int(account_number_redundancy("1", y)) <= 99 for y in ("0", "9", "12345"))


def test_every_single_digit_change_of_the_test_wallets_is_refused(
        provider: YooMoneyProvider) -> None:
    """Exhaustive: all 9 replacements of every digit of every YooKassa test wallet."""
    for wallet in YOOKASSA_TEST_WALLETS:
        for position, current in enumerate(wallet):
            for digit in "0123456789".replace(current, ""):
                altered = wallet[:position] + digit + wallet[position + 1:]
                assert _reason(provider, altered) in ("check_digit", "prefix"), altered
                if position > 0:  # the check digits alone catch every change after N
                    assert check_wallet(altered) is not None, altered


def test_the_bare_algorithm_misses_a_changed_first_digit() -> None:
    """Why ``wallet_prefixes`` exists: changing N re-parses the number, and padding zeros weigh
    like real zeros, so 2·10·016145757·14 is as valid as 4·1001·6145757·14."""
    assert check_wallet("21001614575714") is None
    assert check_wallet("01001614575714") == "format"          # N = 0
    assert check_wallet("91001614575") == "format"             # N = 9 needs 13+ digits
    anything = YooMoneyProvider({"wallet_prefixes": ()})
    assert anything.validate_account("21001614575714") == "21001614575714"
    assert _reason(anything, "01001614575714") == "format"
    with pytest.raises(ValueError):
        YooMoneyProvider({"wallet_prefixes": "4100"})


@given(st.sampled_from(YOOKASSA_TEST_WALLETS), st.data())
def test_flipping_any_one_digit_is_refused(wallet: str, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(wallet) - 1))
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != wallet[position]]))
    altered = wallet[:position] + digit + wallet[position + 1:]
    with pytest.raises(InvalidAccount) as caught:
        YooMoneyProvider().validate_account(altered)
    assert caught.value.reason_code in ("check_digit", "prefix")


@given(x=st.text("0123456789", min_size=1, max_size=9),
       y=st.text("0123456789", min_size=1, max_size=15), data=st.data())
def test_generated_wallets_are_valid_and_single_digit_changes_are_caught(
        x: str, y: str, data: st.DataObject) -> None:
    wallet = make_wallet(x, y)
    if not 11 <= len(wallet) <= 20:
        return
    assert check_wallet(wallet) is None
    # Any digit of X, Y or Z: its weight 13^k mod 99 is prime to 99, so the sum always moves.
    # (Changing N re-parses the number; that is checked exhaustively on the test wallets.)
    position = data.draw(st.integers(1, len(wallet) - 1))
    digit = data.draw(st.sampled_from([d for d in "0123456789" if d != wallet[position]]))
    assert check_wallet(wallet[:position] + digit + wallet[position + 1:]) is not None
