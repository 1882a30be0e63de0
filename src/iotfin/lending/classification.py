"""The PRC five-tier loan classification (五级分类) by days past due, with restructuring observation."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    NORMAL = "normal"  # 正常
    SPECIAL_MENTION = "special-mention"  # 关注
    SUBSTANDARD = "substandard"  # 次级
    DOUBTFUL = "doubtful"  # 可疑
    LOSS = "loss"  # 损失


TIER_ORDER = tuple(Tier)
TIER_ZH = {Tier.NORMAL: "正常", Tier.SPECIAL_MENTION: "关注", Tier.SUBSTANDARD: "次级", Tier.DOUBTFUL: "可疑",
           Tier.LOSS: "损失"}
# Days past due at which a loan is at least this tier, as we read 《商业银行金融资产风险分类办法》 (CBIRC/PBOC
# Order 2023 No. 1): any overdue → special mention; > 90 days → substandard; > 270 → doubtful; > 360 → loss.
DPD_THRESHOLDS: tuple[tuple[int, Tier], ...] = ((361, Tier.LOSS), (271, Tier.DOUBTFUL), (91, Tier.SUBSTANDARD),
                                                (1, Tier.SPECIAL_MENTION), (0, Tier.NORMAL))
DEFAULT_DPD = 91  # non-performing from here: subsidies are clawed back
RESTRUCTURE_OBSERVATION_DAYS = 365  # restructured loans are observed for at least a year


def classify(dpd: int, restructured: bool = False, floor: Tier = Tier.NORMAL) -> Tier:
    """The tier by days past due; a restructured loan in observation is at least special mention and
    never better than it was when restructured (`floor`)."""
    tier = next(t for threshold, t in DPD_THRESHOLDS if dpd >= threshold)
    if restructured:
        tier = max(tier, Tier.SPECIAL_MENTION, floor, key=TIER_ORDER.index)
    return tier


def tier_index(tier: Tier) -> int:
    return TIER_ORDER.index(tier)
