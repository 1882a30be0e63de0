"""Complaints and hardship requests: states, allowed transitions, deadlines, texts in zh and en.

Pure: the service loads a record, asks these functions what the next state is (or why not), and
stores the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from iotfin.core.errors import Conflict, ValidationError

# --- complaints ---------------------------------------------------------------------------------

COMPLAINT_CATEGORIES: dict[str, tuple[str, str]] = {
    "pricing": ("利率或费用", "interest or fees"),
    "disclosure": ("信息披露", "disclosure"),
    "collection": ("催收行为", "collection practice"),
    "data_privacy": ("个人信息与数据使用", "personal data and data use"),
    "service": ("服务质量", "service quality"),
    "decision": ("授信决定", "credit decision"),
    "other": ("其他", "other"),
}

COMPLAINT_STATUSES: dict[str, tuple[str, str]] = {
    "submitted": ("已提交，待受理", "submitted, awaiting acknowledgement"),
    "acknowledged": ("已受理", "acknowledged"),
    "assigned": ("处理中", "being handled"),
    "escalated": ("已升级", "escalated"),
    "resolved": ("已办结", "resolved"),
}

RESOLUTIONS: dict[str, tuple[str, str]] = {
    "upheld_remedied": ("投诉成立，已纠正并补救", "upheld: corrected and remedied"),
    "upheld_explained": ("投诉部分成立，已说明并改进", "partly upheld: explained and improved"),
    "not_upheld": ("投诉不成立，已书面说明理由", "not upheld: reasons given in writing"),
    "withdrawn": ("投诉人撤回", "withdrawn by the complainant"),
    "referred": ("已转交有权机构处理", "referred to the competent authority"),
}

_NEXT: dict[str, set[str]] = {
    "acknowledge": {"submitted"},
    "assign": {"acknowledged", "assigned", "escalated"},
    "escalate": {"submitted", "acknowledged", "assigned"},
    "resolve": {"acknowledged", "assigned", "escalated"},
}
_RESULT = {"acknowledge": "acknowledged", "assign": "assigned", "escalate": "escalated", "resolve": "resolved"}


def complaint_transition(status: str, action: str) -> str:
    """The status after `action`, or Conflict naming why it is not allowed now."""
    if status not in _NEXT[action]:
        zh, en = COMPLAINT_STATUSES[status]
        raise Conflict(f"cannot {action} a complaint that is {en} / 投诉当前状态为「{zh}」，不能执行此操作")
    return _RESULT[action]


@dataclass(frozen=True)
class Deadlines:
    acknowledge_by: datetime
    resolve_by: datetime


def deadlines(submitted_at: datetime, ack_hours: int, resolve_days: int) -> Deadlines:
    return Deadlines(submitted_at + timedelta(hours=ack_hours), submitted_at + timedelta(days=resolve_days))


def check_choice(value: str, choices: dict[str, tuple[str, str]], what: str) -> str:
    if value not in choices:
        raise ValidationError(f"{what} must be one of {', '.join(choices)}")
    return value


# --- hardship requests ----------------------------------------------------------------------------

HARDSHIP_REASONS: dict[str, tuple[str, str]] = {
    "income_loss": ("经营收入大幅下降", "sharp fall in business income"),
    "illness": ("主要经营者患病", "illness of the owner or key person"),
    "disaster": ("自然灾害或突发事件", "natural disaster or emergency"),
    "supply_chain": ("上下游付款延迟", "late payment by buyers or supply-chain disruption"),
    "other": ("其他困难", "other hardship"),
}

RELIEF_KINDS: dict[str, tuple[str, str]] = {
    "deferral": ("延期还款", "payment deferral"),
    "restructure": ("调整还款计划", "restructured repayment schedule"),
    "fee_waiver": ("减免罚息与费用", "waiver of penalty interest and fees"),
    "rate_reduction": ("下调利率", "interest-rate reduction"),
}

HARDSHIP_STATUSES: dict[str, tuple[str, str]] = {
    "submitted": ("已提交", "submitted"),
    "under_review": ("审核中", "under review"),
    "approved": ("已批准", "approved"),
    "declined": ("未获批准", "declined"),
}


def hardship_transition(status: str, action: str) -> str:
    allowed = {"review": ({"submitted"}, "under_review"), "approve": ({"submitted", "under_review"}, "approved"),
               "decline": ({"submitted", "under_review"}, "declined")}
    sources, result = allowed[action]
    if status not in sources:
        zh, en = HARDSHIP_STATUSES[status]
        raise Conflict(f"cannot {action} a hardship request that is {en} / 困难申请当前状态为「{zh}」，不能执行此操作")
    return result


def texts(value: str | None, table: dict[str, tuple[str, str]]) -> dict[str, str] | None:
    if value is None or value not in table:
        return None
    zh, en = table[value]
    return {"zh": zh, "en": en}
