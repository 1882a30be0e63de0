"""Check characters of PRC identifiers: USCC (GB 32100-2015), organisation code (GB 11714-1997) and
resident identity number (GB 11643-1999), each checked against an independent computation."""

from __future__ import annotations

import string

import pytest

from iotfin.core.ids import (
    USCC_ALPHABET,
    is_valid_resident_id,
    is_valid_uscc,
    new_token,
    org_code_check_char,
    resident_id_check_char,
    uscc_check_char,
)

# Published codes of real, well-known enterprises.
REAL_USCCS = [
    "91350100M000100Y43",  # the example in GB 32100-2015
    "914403001922038216",  # 华为技术有限公司
    "9144030071526726XG",  # 深圳市腾讯计算机系统有限公司
    "91330100716105852F",  # 阿里巴巴(中国)有限公司
]


def reference_uscc_check(first17: str) -> str:
    """GB 32100-2015 written out from the standard: weights 3^i mod 31, C18 = 31 - (sum mod 31)."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    total = sum(alphabet.index(ch) * pow(3, i, 31) for i, ch in enumerate(first17))
    c18 = 31 - total % 31
    return alphabet[0 if c18 == 31 else c18]


def test_alphabet_excludes_the_letters_the_standard_excludes() -> None:
    assert len(USCC_ALPHABET) == 31 == len(set(USCC_ALPHABET))
    assert set(string.digits + string.ascii_uppercase) - set(USCC_ALPHABET) == set("IOSVZ")


@pytest.mark.parametrize("code", REAL_USCCS)
def test_real_codes_are_valid(code: str) -> None:
    assert reference_uscc_check(code[:17]) == code[17]  # the reference agrees with the published code
    assert uscc_check_char(code[:17]) == code[17]
    assert is_valid_uscc(code)


@pytest.mark.parametrize("code", REAL_USCCS)
def test_the_embedded_organisation_code_checks_too(code: str) -> None:
    # Characters 9-17 of a USCC are the 9-character organisation code, with its own check character.
    org = code[8:17]
    if org.isalnum() and org[:8].isdigit():  # the GB 32100 example's "M000100Y4" is not an old org code
        assert org_code_check_char(org[:8]) == org[8]


@pytest.mark.parametrize("code", [
    "91350100M000100Y44",  # wrong check character
    "91350100M000100Y4",  # 17 characters
    "91350100M000100Y430",  # 19 characters
    "",
    "91350100m000100y43",  # lower case is not in the alphabet
    "91350100M000100I43",  # I is excluded
    "91350100M0O0100Y43",  # O is excluded
    "91350100M000100Y4S",  # S is excluded
    "914403001922038217",  # Huawei with the last digit changed
    "914403001922038261",  # two characters transposed
])
def test_invalid_codes(code: str) -> None:
    assert not is_valid_uscc(code)


def test_every_single_character_change_is_detected() -> None:
    code = REAL_USCCS[1]
    for i in range(18):
        for ch in USCC_ALPHABET:
            if ch != code[i]:
                changed = code[:i] + ch + code[i + 1:]
                assert not is_valid_uscc(changed), changed


def test_check_char_matches_the_reference_everywhere() -> None:
    bodies = ["".join(USCC_ALPHABET[(n * 7 + i * 13) % 31] for i in range(17)) for n in range(500)]
    bodies += ["0" * 17, "Y" * 17]
    for body in bodies:
        assert uscc_check_char(body) == reference_uscc_check(body), body
        assert is_valid_uscc(body + uscc_check_char(body))
    assert uscc_check_char("0" * 17) == "0"  # 31 - 0 is taken mod 31


def test_check_char_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        uscc_check_char("91350100M000100Y")  # 16 characters
    with pytest.raises(ValueError):
        uscc_check_char("91350100M000100I4")  # a character outside the alphabet


@pytest.mark.parametrize(("body", "check"), [
    ("D2143569", "X"),  # the example in GB 11714-1997
    ("19220382", "1"),  # Huawei
    ("71526726", "X"),  # Tencent
    ("71610585", "2"),  # Alibaba
    ("00000000", "0"),  # 11 - 0 = 11 -> 0
])
def test_organisation_code_check_char(body: str, check: str) -> None:
    assert org_code_check_char(body) == check


@pytest.mark.parametrize("number", ["11010519491231002X", "11010519491231002x", "440524188001010014"])
def test_valid_resident_ids(number: str) -> None:
    assert is_valid_resident_id(number)


@pytest.mark.parametrize("number", ["110105194912310021", "11010519491231002", "1101051949123100AX",
                                    "11010519491231002X0", ""])
def test_invalid_resident_ids(number: str) -> None:
    assert not is_valid_resident_id(number)


def test_resident_id_check_char_is_iso_7064_mod_11_2() -> None:
    for n in range(2_000):
        first17 = f"{110105 + n % 97:06d}{19490101 + n:08d}{n % 1000:03d}"
        # ISO 7064 MOD 11-2 written out: the full 18 characters, X = 10, weigh to 1 mod 11.
        check = resident_id_check_char(first17)
        digits = [int(c) for c in first17] + [10 if check == "X" else int(check)]
        assert sum(d * pow(2, 17 - i, 11) for i, d in enumerate(digits)) % 11 == 1, first17


def test_new_tokens_are_url_safe_and_unique() -> None:
    tokens = {new_token() for _ in range(1_000)}
    assert len(tokens) == 1_000
    assert all(len(t) == 20 and set(t) <= set(string.ascii_letters + string.digits + "-_") for t in tokens)
    assert len(new_token(32)) == 43
