"""The unified social credit code (GB 32100-2015) and GB/T 2260 region codes: real codes, codes built
with the algorithm, and every way a code can be wrong (each names its field)."""

from __future__ import annotations

import itertools
import random

import pytest

from iotfin.core.errors import ValidationError
from iotfin.core.ids import USCC_ALPHABET
from iotfin.identity import codes

# Codes printed on real business licences (public registers): the standard's own example, and
# companies in Shenzhen.
REAL = ("91350100M000100Y43", "91440300708461136T", "914403001922038216")


@pytest.mark.parametrize("code", REAL)
def test_real_codes_are_valid_and_read(code: str) -> None:
    read = codes.check_uscc(code)
    assert read.code == code and read.authority == "9" and read.org_type == "1"
    assert read.authority_name == "工商" and read.org_type_name == "企业"
    assert read.region.code == code[2:8] and read.region.level == "prefecture"


def test_the_standards_example_reads_as_fuzhou() -> None:
    read = codes.check_uscc(" 91350100m000100y43 ")  # as typed from a licence: spaces and lower case
    assert read.code == "91350100M000100Y43"
    assert read.region.name == "福建省福州市" and read.region.name_en == "Fuzhou, Fujian"


def test_weights_are_powers_of_three_mod_31() -> None:
    # the check character is (31 - sum(c_i * 3^i mod 31) mod 31) mod 31: recomputed here independently
    for code in REAL:
        total = sum(USCC_ALPHABET.index(ch) * pow(3, i, 31) for i, ch in enumerate(code[:17]))
        assert USCC_ALPHABET[(31 - total % 31) % 31] == code[17]


def test_generated_codes_round_trip() -> None:
    rnd = random.Random(7)
    regions = ["110105", "310115", "440300", "330106", "650100", "419001", "542200"]
    for authority_type, region in itertools.product(("91", "92", "93", "12", "52", "N2"), regions):
        body = "".join(rnd.choice(USCC_ALPHABET) for _ in range(9))
        code = codes.make_uscc(authority_type, region, body)
        assert codes.uscc_problem(code) is None
        assert codes.check_uscc(code).region.code == region
        # any one character changed breaks the check (the code is a MOD 31 check over a prime)
        i = rnd.randrange(17)
        other = USCC_ALPHABET[(USCC_ALPHABET.index(code[i]) + 1 + rnd.randrange(30)) % 31]
        assert codes.uscc_problem(code[:i] + other + code[i + 1:]) is not None


@pytest.mark.parametrize(("code", "words"), [
    ("91350100M000100Y44", "check character is 4, the code's first 17 characters give 3"),
    ("91350100M000100Y4", "18 characters"),
    ("91350100M000100Y433", "18 characters"),
    ("91350100M000I00Y43", "outside the code's alphabet: I"),
    ("91350100M0001O0Y43", "outside the code's alphabet: O"),
    ("Z1350100M000100Y43", "outside the code's alphabet: Z"),
    ("B1350100M000100Y43", "not a registration authority"),
    ("94350100M000100Y43", "not an organisation type of authority 9"),
    ("", "18 characters"),
])
def test_invalid_codes_name_the_field_and_say_why(code: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        codes.check_uscc(code)
    assert caught.value.field == "uscc" and words in str(caught.value)


def test_a_code_with_a_valid_check_but_unknown_region_is_refused() -> None:
    code = codes.make_uscc("91", "990100", "MA0000001")  # 99: no such province
    assert codes.uscc_problem(code) is None  # the check character alone is fine
    with pytest.raises(ValidationError, match="not a GB/T 2260 region") as caught:
        codes.check_uscc(code)
    assert caught.value.field == "uscc"


@pytest.mark.parametrize(("code", "level", "name"), [
    ("440000", "province", "广东省"),
    ("440300", "prefecture", "广东省深圳市"),
    ("440305", "county", "广东省深圳市"),   # a district: accepted under its known prefecture
    ("110105", "county", "北京市"),         # under 市辖区: named by the municipality
    ("110000", "province", "北京市"),
    ("419001", "county", "河南省"),         # 济源市, directly under the province
    ("542200", "prefecture", "西藏自治区山南地区"),  # since renamed 山南市 (540500): still valid
    ("810000", "province", "香港特别行政区"),
])
def test_regions(code: str, level: str, name: str) -> None:
    region = codes.region(code)
    assert (region.level, region.name, region.province) == (level, name, code[:2] + "0000")


def test_every_province_has_an_english_name() -> None:
    provinces = codes.provinces()
    assert len(provinces) == 34 and all(p["en"] and p["zh"] for p in provinces.values())
    assert codes.region("540000").name_en == "Xizang (Tibet)"


@pytest.mark.parametrize(("code", "words"), [
    ("99000", "6-digit"), ("4403001", "6-digit"), ("44030A", "6-digit"), ("", "6-digit"),
    ("990000", "not a province"), ("449900", "not a prefecture of Guangdong"), ("449901", "not a prefecture"),
])
def test_bad_region_codes(code: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words) as caught:
        codes.region(code)
    assert caught.value.field == "region_code"


def test_the_simulators_regions_are_all_known() -> None:
    from iotfin.sim.reference import REGIONS  # the demo's enterprises are registered in these

    for code, name, *_ in REGIONS:
        assert codes.region(code).name.endswith(name)
