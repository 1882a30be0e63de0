"""The product catalogue and what an enterprise applies for, checked against it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from iotfin.core.errors import ValidationError
from iotfin.core.money import FEN, to_money
from iotfin.decision.values import ZERO, to_int, to_rate


@dataclass(frozen=True, slots=True)
class Product:
    """A loan product. `collateral_secured` is the limit policy (docs/decisioning.md, "Limits"): a
    product secured by pledged goods (inventory / warehouse-receipt pledge) is limited by the
    IoT-verified collateral value x `advance_rate`; for an unsecured product (working capital
    repaid from operating revenue, receivable financing repaid from the buyer's payment) the
    collateral-based figure is reported but does not bind, and the activity-based limit, the
    strategy's cap and the exposure policy decide."""

    code: str
    name_zh: str
    name_en: str
    min_amount: Decimal
    max_amount: Decimal
    min_tenor_months: int
    max_tenor_months: int
    advance_rate: Decimal  # share of IoT-verified collateral value lent against
    lgd: Decimal  # loss given default used in pricing
    servicing: str  # the lending product that books an approval: its method, day count and fees make the APR
    collateral_secured: bool = False  # the asset-based limit binds only for collateral-secured products


PRODUCTS: dict[str, Product] = {p.code: p for p in (
    Product("iot-working-capital", "物联网流动资金贷", "IoT working-capital loan", Decimal("50000"), Decimal("3000000"),
            3, 36, Decimal("0.50"), Decimal("0.45"), "iot-line"),
    Product("receivable-financing", "应收账款融资", "Receivable financing", Decimal("10000"), Decimal("5000000"),
            1, 12, Decimal("0.80"), Decimal("0.35"), "receivable-bullet"),
    Product("inventory-pledge", "存货（仓单）质押贷", "Inventory / warehouse-receipt pledge loan", Decimal("50000"),
            Decimal("5000000"), 1, 12, Decimal("0.60"), Decimal("0.40"), "iot-term", collateral_secured=True),
)}


@dataclass(frozen=True, slots=True)
class Application:
    """What the enterprise applies for. `subsidy_rate` is a third party's interest subsidy (贴息) in
    annual rate points (0.01 = one percentage point), paid to the lender on the borrower's behalf."""

    enterprise_id: int
    product: str
    amount: Decimal
    tenor_months: int
    ref: str | None = None
    core_enterprise_id: int | None = None
    subsidy_rate: Decimal = ZERO
    subsidy_provider: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"enterprise_id": self.enterprise_id, "product": self.product, "amount": str(self.amount),
                "tenor_months": self.tenor_months, "ref": self.ref, "core_enterprise_id": self.core_enterprise_id,
                "subsidy_rate": str(self.subsidy_rate), "subsidy_provider": self.subsidy_provider}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Application:
        if not isinstance(data, Mapping):
            raise ValidationError("application: must be an object")
        try:
            core = data.get("core_enterprise_id")
            return cls(
                enterprise_id=to_int(data["enterprise_id"], "application.enterprise_id"),
                product=str(data["product"]),
                amount=to_money(data["amount"]),
                tenor_months=to_int(data["tenor_months"], "application.tenor_months"),
                ref=None if data.get("ref") is None else str(data["ref"]),
                core_enterprise_id=None if core is None else to_int(core, "application.core_enterprise_id"),
                subsidy_rate=to_rate(data.get("subsidy_rate", "0"), "application.subsidy_rate"),
                subsidy_provider=data.get("subsidy_provider"),
            )
        except KeyError as exc:
            raise ValidationError(f"application: missing field {exc.args[0]!r}") from None


def validate_application(app: Application, products: Mapping[str, Product] = PRODUCTS) -> Product:
    """The product the application is for, or a ValidationError that says what is wrong."""
    product = products.get(app.product)
    if product is None:
        raise ValidationError(f"unknown product {app.product!r}; known: {', '.join(sorted(products))}")
    if app.amount != app.amount.quantize(FEN):
        raise ValidationError(f"amount: more precise than a fen: {app.amount}")
    if not product.min_amount <= app.amount <= product.max_amount:
        raise ValidationError(f"amount {app.amount} is out of range for {product.code}: "
                              f"{product.min_amount}..{product.max_amount} yuan")
    if not product.min_tenor_months <= app.tenor_months <= product.max_tenor_months:
        raise ValidationError(f"tenor {app.tenor_months} months is out of range for {product.code}: "
                              f"{product.min_tenor_months}..{product.max_tenor_months} months")
    if not ZERO <= app.subsidy_rate <= Decimal("0.10"):
        raise ValidationError(f"subsidy_rate: must be between 0 and 0.10, got {app.subsidy_rate}")
    if app.subsidy_rate > 0 and not app.subsidy_provider:
        raise ValidationError("subsidy_rate given without the subsidy_provider who pays it")
    return product
