"""The product shelf: what each servicing product's loans are booked with (method, day count, fees)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from iotfin.core.errors import ValidationError
from iotfin.core.money import ZERO
from iotfin.lending.daycount import DayCount
from iotfin.lending.schedules import Method


@dataclass(frozen=True, slots=True)
class Product:
    code: str
    name_en: str
    name_zh: str
    kind: str  # "term" or "line" (revolving credit line: drawdowns under a limit)
    method: Method
    day_count: DayCount
    penalty_markup: Decimal  # penalty rate = contract rate × (1 + markup), on overdue principal
    upfront_fee_rate: Decimal = ZERO  # share of principal, billed at drawdown
    periodic_fee: Decimal = ZERO  # yuan per instalment
    allocation: tuple[str, ...] = ("penalty", "fee", "interest", "principal")
    # the ranges a loan of this product is booked within (a manual booking outside them is refused)
    min_principal: Decimal = Decimal("1000")
    max_principal: Decimal = Decimal("5000000")
    min_term: int = 1
    max_term: int = 60
    min_rate: Decimal = Decimal("0.01")
    max_rate: Decimal = Decimal("0.24")

    def check_ranges(self, principal: Decimal, term: int, annual_rate: Decimal) -> None:
        """ValidationError naming the field when a loan's terms are outside this product's ranges."""
        if not self.min_principal <= principal <= self.max_principal:
            raise ValidationError(f"principal {principal} is outside {self.code}'s range {self.min_principal}.."
                                  f"{self.max_principal} yuan (超出产品金额范围)")
        if not self.min_term <= term <= self.max_term:
            raise ValidationError(f"term {term} months is outside {self.code}'s range {self.min_term}..{self.max_term} "
                                  "months (超出产品期限范围)")
        if not self.min_rate <= annual_rate <= self.max_rate:
            raise ValidationError(f"annual_rate {annual_rate} is outside {self.code}'s range {self.min_rate}.."
                                  f"{self.max_rate} (超出产品利率范围)")


# The product shelf is data. Penalty markups follow common PRC practice (罚息 = contract rate + 30–50 %).
PRODUCTS: dict[str, Product] = {p.code: p for p in (
    Product("iot-term", "IoT-secured term loan", "物联网动产质押贷款", "term", Method.EQUAL_INSTALMENT,
            DayCount.ACT_360, Decimal("0.5"), upfront_fee_rate=Decimal("0.005")),
    Product("iot-line", "IoT revolving credit line", "物联网循环额度贷", "line", Method.INTEREST_ONLY,
            DayCount.ACT_360, Decimal("0.5"), max_term=36),
    Product("receivable-bullet", "Receivable financing (bullet)", "应收账款融资", "term", Method.BULLET,
            DayCount.ACT_365, Decimal("0.5"), max_term=12),
    Product("equipment-principal", "Equipment loan (equal principal)", "设备贷(等额本金)", "term",
            Method.EQUAL_PRINCIPAL, DayCount.D30_360, Decimal("0.3"), periodic_fee=Decimal("10.00")),
)}


def product(code: str) -> Product:
    try:
        return PRODUCTS[code]
    except KeyError:
        raise ValidationError(f"unknown product {code!r}; known: {', '.join(sorted(PRODUCTS))}") from None
