"""Public codes an enterprise is known by, validated: the unified social credit code (统一社会信用代码,
GB 32100-2015) and the administrative region code (行政区划代码, GB/T 2260). Pure functions over
shipped data (`identity/data/gbt2260.json`); no database.

A unified social credit code has 18 characters from a 31-character set (digits and capital letters
without I, O, Z, S, V):

    9 1 350100 M000100Y4 3
    │ │ │      │         └ check character: (31 − Σ cᵢ·wᵢ mod 31) mod 31, wᵢ = 3^i mod 31
    │ │ │      └ the organisation's code (GB 11714 body and check character, for most)
    │ │ └ the registering authority's region (GB/T 2260)
    │ └ the organisation type within that authority (1 企业, 2 个体工商户, 3 农民专业合作社 for 工商)
    └ the registration authority (9 工商/市场监管, 5 民政, 1 机构编制, ...)

A region code is accepted when it is a province (`xx0000`), a prefecture (`xxxx00`) or a county whose
prefecture is known (`xxxxyy`, the prefecture `xxxx00` in the data): the data ships the province and
prefecture levels only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from iotfin.core.errors import ValidationError
from iotfin.core.ids import USCC_ALPHABET, uscc_check_char

USCC_LENGTH = 18

#: GB 32100-2015 §4.1 and its amendments: registration authority -> (zh, en, {org type: (zh, en)})
AUTHORITIES: dict[str, tuple[str, str, dict[str, tuple[str, str]]]] = {
    "1": ("机构编制", "institutional establishment", {"1": ("机关", "government body"), "2": ("事业单位", "public institution"),
                                               "3": ("中央编办直接管理机构编制的群众团体", "mass organisation"),
                                               "9": ("其他", "other")}),
    "2": ("外交", "foreign affairs", {"1": ("外国常驻新闻机构", "resident foreign news agency"), "9": ("其他", "other")}),
    "3": ("司法行政", "justice", {"1": ("律师执业机构", "law firm"), "2": ("公证处", "notary office"),
                                "3": ("基层法律服务所", "legal service office"), "4": ("司法鉴定机构", "forensic institution"),
                                "5": ("仲裁委员会", "arbitration commission"), "9": ("其他", "other")}),
    "4": ("文化", "culture", {"1": ("外国在华文化中心", "foreign cultural centre"), "9": ("其他", "other")}),
    "5": ("民政", "civil affairs", {"1": ("社会团体", "social organisation"), "2": ("民办非企业单位", "private non-enterprise unit"),
                                  "3": ("基金会", "foundation"), "9": ("其他", "other")}),
    "6": ("旅游", "tourism", {"1": ("外国旅游部门常驻代表机构", "foreign tourism office"),
                            "2": ("港澳台地区旅游部门常驻内地（大陆）代表机构", "Hong Kong, Macao or Taiwan tourism office"),
                            "9": ("其他", "other")}),
    "7": ("宗教", "religious affairs", {"1": ("宗教活动场所", "place of worship"), "2": ("宗教院校", "religious college"),
                                     "9": ("其他", "other")}),
    "8": ("工会", "trade unions", {"1": ("基层工会", "grassroots trade union"), "9": ("其他", "other")}),
    "9": ("工商", "market regulation (industry and commerce)", {"1": ("企业", "enterprise"),
                                                              "2": ("个体工商户", "individual business"),
                                                              "3": ("农民专业合作社", "farmers' cooperative")}),
    "A": ("中央军委改革和编制办公室", "military establishment", {"1": ("军队事业单位", "military public institution"),
                                                        "9": ("其他", "other")}),
    "N": ("农业", "agriculture", {"1": ("组级集体经济组织", "group-level collective"),
                                "2": ("村级集体经济组织", "village-level collective"),
                                "3": ("乡镇级集体经济组织", "township-level collective"), "9": ("其他", "other")}),
    "Y": ("其他", "other", {"1": ("其他", "other")}),
}


@dataclass(frozen=True, slots=True)
class Region:
    """A GB/T 2260 code with the names the data knows for it."""

    code: str
    level: str                 # "province" | "prefecture" | "county"
    province: str              # the province's code (xx0000)
    name: str                  # zh, as stored on an enterprise: 广东省深圳市
    name_en: str               # the province's English name, and the prefecture's where shipped
    retired: bool = False      # a prefecture since renamed or merged (codes issued under it stay valid)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "level": self.level, "province": self.province, "name": self.name,
                "name_en": self.name_en, "retired": self.retired}


@dataclass(frozen=True, slots=True)
class Uscc:
    """A valid unified social credit code and what it says."""

    code: str
    authority: str
    authority_name: str
    org_type: str
    org_type_name: str
    region: Region


@cache
def _data() -> dict[str, Any]:
    return json.loads(resources.files("iotfin.identity").joinpath("data/gbt2260.json").read_text(encoding="utf-8"))


def provinces() -> dict[str, dict[str, str]]:
    """Province-level codes -> {"zh", "en"}."""
    return _data()["provinces"]


def region(code: str, field: str = "region_code") -> Region:
    """The region a GB/T 2260 code names; ValidationError (naming `field`) for a code that is not one."""
    text = (code or "").strip()
    if len(text) != 6 or not text.isascii() or not text.isdigit():
        raise ValidationError(f"{field} must be a 6-digit GB/T 2260 region code, e.g. 440300 (got {code!r}) / "
                              "行政区划代码应为6位数字", field=field)
    data = _data()
    province = data["provinces"].get(text[:2] + "0000")
    if province is None:
        raise ValidationError(f"{field} {text}: {text[:2]} is not a province in GB/T 2260 / 省级代码不存在", field=field)
    if text.endswith("0000"):
        return Region(text, "province", text, province["zh"], province["en"])
    prefecture = data["prefectures"].get(text[:4] + "00")
    if prefecture is None:
        raise ValidationError(f"{field} {text}: {text[:4]}00 is not a prefecture of {province['en']} in GB/T 2260 / "
                              f"{province['zh']}下无此地级代码", field=field)
    grouped = bool(prefecture.get("group"))  # 市辖区, 县, 省直辖县级行政区划: named by the province alone
    name = province["zh"] if grouped or prefecture["zh"] == province["zh"] else province["zh"] + prefecture["zh"]
    name_en = province["en"] if grouped or "en" not in prefecture else f"{prefecture['en']}, {province['en']}"
    level = "prefecture" if text.endswith("00") else "county"
    return Region(text, level, text[:2] + "0000", name, name_en, bool(prefecture.get("retired")))


def uscc_problem(code: str) -> str | None:
    """Why `code` is not a valid unified social credit code (en / zh), or None when it is one."""
    if len(code) != USCC_LENGTH:
        return f"must have 18 characters, not {len(code)} / 应为18位"
    bad = sorted({ch for ch in code if ch not in USCC_ALPHABET})
    if bad:
        return (f"has characters outside the code's alphabet: {' '.join(bad)} (digits and capital letters "
                "except I, O, Z, S, V) / 含有非法字符")
    authority = AUTHORITIES.get(code[0])
    if authority is None:
        return f"{code[0]} is not a registration authority code (1-9, A, N, Y) / 登记管理部门码无效"
    if code[1] not in authority[2]:
        return (f"{code[1]} is not an organisation type of authority {code[0]} ({authority[1]}; types "
                f"{', '.join(authority[2])}) / 机构类别代码无效")
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        return f"check character is {code[17]}, the code's first 17 characters give {expected} / 校验码错误"
    return None


def check_uscc(code: str, field: str = "uscc") -> Uscc:
    """A unified social credit code, validated and read; ValidationError naming `field` otherwise.
    Surrounding spaces are dropped and letters upper-cased (as printed on a business licence)."""
    text = (code or "").strip().upper()
    reason = uscc_problem(text)
    if reason is not None:
        raise ValidationError(f"{field} {text!r} is not a valid unified social credit code: {reason}", field=field)
    try:
        where = region(text[2:8], field)
    except ValidationError as exc:
        raise ValidationError(f"{field} {text!r}: characters 3-8 are not a GB/T 2260 region ({exc}) / "
                              "登记管理机关行政区划码无效", field=field) from None
    authority = AUTHORITIES[text[0]]
    return Uscc(text, text[0], authority[0], text[1], authority[2][text[1]][0], where)


def make_uscc(authority_type: str, region_code: str, body: str) -> str:
    """The code with its check character, from the two-character authority and type (e.g. "91"), the
    region code and the 9-character organisation code (tests, simulations, the demo)."""
    first17 = f"{authority_type}{region_code}{body}"
    if len(first17) != 17:
        raise ValueError("authority+type (2), region (6) and organisation code (9) make 17 characters")
    return first17 + uscc_check_char(first17)
