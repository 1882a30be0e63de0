"""Credit decisioning use cases: publish and deploy strategies, decide applications, replay, review.

The service is built with ports, so the contexts it depends on plug in without it importing them:
`assess(enterprise_id) -> RiskAssessment` (the risk engine), `apr(servicing_product, principal,
annual_rate, months, start) -> OfferFacts` (`lending.disclosure.offer_terms`: lending's key facts for the product
that will book the loan, so the APR offered is the APR signed) and
`anchor(conn, decision_id)` (the ledger, called inside the transaction that stores the decision, so
a decision and its anchor commit together: no stored decision without its anchor, and one durable
commit, not two). `evaluate_application` is the whole decision for one application without
storage: the CLI's `decision run`, the service and replay all go through it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NoReturn

import orjson
import zen
from sqlalchemy import Connection, Engine, Select
from sqlalchemy.exc import IntegrityError

from iotfin.core.errors import Conflict, Forbidden, NotFound, ServiceUnavailable, ValidationError
from iotfin.core.money import quantize_fen, to_money
from iotfin.core.time import business_date, utc_now
from iotfin.db.engine import write_transaction
from iotfin.db.pagination import PageParams
from iotfin.decision import store
from iotfin.decision.applications import PRODUCTS, Application, Product, validate_application
from iotfin.decision.assessment import RiskAssessment
from iotfin.decision.challenger import in_challenger
from iotfin.decision.disclosure import apr_disclosure
from iotfin.decision.limits import Exposure, LimitPolicy, credit_limit
from iotfin.decision.lpr import LprCurve
from iotfin.decision.ports import (  # noqa: E402
    Anchor,
    ApprovedTerms,
    AprPort,
    Assess,
    ConsentCheck,
    CoreOf,
    Events,
    OfferPort,
    RiskEngine,
)
from iotfin.decision.pricing import PricingPolicy, price
from iotfin.decision.reasons import (
    LIMIT_REDUCED,
    NO_DECISION,
    PRICE_ABOVE_CEILING,
    TENOR_REDUCED,
    TERMS_MISSING,
    Reason,
    limit_below_minimum,
)
from iotfin.decision.result import DecisionResult
from iotfin.decision.strategies import (
    CompiledStrategy,
    StrategyError,
    compile_strategy,
    compiled_graph,
    default_strategy_text,
    outcome_from_result,
    strategy_context,
)
from iotfin.decision.tables import APPLICATION_STATUSES
from iotfin.decision.values import ZERO, plain, to_rate
from iotfin.identity.access import set_owner_in  # noqa: E402

STRATEGY_DECLINE = Reason("STRATEGY_DECLINE", "不符合授信策略", "Declined by the credit strategy")
STRATEGY_REFER = Reason("STRATEGY_REFER", "授信策略要求人工审核", "The credit strategy routes this application to an officer")
STATUS_OF = {"approve": "approved", "decline": "declined", "refer": "referred", "counter_offer": "approved"}


def _no_chain(conn: Connection, enterprise_id: int) -> None:
    """The supply-chain port when none is wired: no enterprise belongs to a chain."""
    return None


@dataclass(frozen=True, slots=True)
class Applicant:
    """Who submits an application. A lender: its consent is checked (`consent_of`, its code), the risk
    engine reads within it (`risk_lender`), and it owns the application (`owner_tenant_id`). The
    operator: no consent check and no owner; it names the lender whose consent the features use."""

    consent_of: str | None = None
    risk_lender: str | None = None
    owner_tenant_id: int | None = None


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """Everything a decision depends on besides the strategy: products, pricing, limits, the LPR
    curve, the four-eyes threshold and the champion/challenger hash salt."""

    products: Mapping[str, Product] = field(default_factory=lambda: dict(PRODUCTS))
    pricing: PricingPolicy = PricingPolicy()
    limits: LimitPolicy = LimitPolicy()
    curve: LprCurve = LprCurve()
    four_eyes_amount: Decimal = Decimal("1000000")
    split_salt: str = "iotfin-decision"


def evaluate_application(strategy: CompiledStrategy, app: Application, assessment: RiskAssessment,
                         policy: DecisionPolicy, exposure: Exposure, on: date, *, strategy_name: str = "default",
                         version: int | None = None, arm: str = "champion", has_core: bool = False,
                         apr: AprPort | None = None, trace: bool = True, disclose: bool = True,
                         outcome_result: Mapping[str, Any] | None = None) -> DecisionResult:
    """One decision, no storage: strategy (evaluated once), then limits, pricing and the disclosure.
    A strategy that fails, or returns no decision, an unknown one, or an approval without terms,
    gives a referral — never an approval. `outcome_result` lets replay pass a result it evaluated
    itself (in a batch)."""
    product = validate_application(app, policy.products)
    if assessment.enterprise_id != app.enterprise_id:
        raise ValidationError(f"the assessment is of enterprise {assessment.enterprise_id}, "
                              f"the application of {app.enterprise_id}")
    try:
        outcome = (outcome_from_result(outcome_result) if outcome_result is not None
                   else strategy.evaluate(strategy_context(app, assessment), trace=trace))
    except StrategyError as exc:
        failure = Reason(NO_DECISION.code, f"{NO_DECISION.zh}（{exc}）", f"{NO_DECISION.en} ({exc})")
        return DecisionResult("refer", app, strategy_name, version, arm, (failure,))
    common = {"application": app, "strategy": strategy_name, "strategy_version": version, "arm": arm,
              "trace": outcome.trace, "strategy_output": {k: v for k, v in outcome.output.items() if k != "trace"}}
    decision = outcome.decision
    if decision == "decline":
        return DecisionResult("decline", reasons=outcome.declines or (STRATEGY_DECLINE,), **common)
    reasons: list[Reason] = []
    if decision == "refer":
        reasons.extend(outcome.referrals or (STRATEGY_REFER,))
    elif decision != "approve":
        decision, reasons = "refer", [NO_DECISION]
    terms = outcome.terms
    if terms is None:
        if decision == "approve":
            decision, reasons = "refer", [TERMS_MISSING]
        return DecisionResult(decision, reasons=tuple(reasons), **common)
    tenor = min(app.tenor_months, terms.max_tenor_months)
    limit = credit_limit(assessment, product.advance_rate, terms.limit_cap, exposure, policy.limits, has_core,
                         secured=product.collateral_secured)
    offered = min(app.amount, limit.limit)
    pricing = price(assessment.pd, product.lgd, terms.margin, tenor, on, policy.curve, policy.pricing, app.subsidy_rate)
    if decision == "approve":
        if offered < product.min_amount:
            return DecisionResult("decline", reasons=(limit_below_minimum(limit.binding),), limit=limit, pricing=pricing,
                                  **common)
        if pricing.bound in ("cap", "legal_ceiling") and pricing.raroc < policy.pricing.hurdle_rate:
            decision, reasons = "refer", [PRICE_ABOVE_CEILING]
        else:
            if offered < app.amount:
                reasons.append(LIMIT_REDUCED)
            if tenor < app.tenor_months:
                reasons.append(TENOR_REDUCED)
    annual, disclosure = None, None
    if offered > 0 and disclose:
        if apr is None:
            raise ServiceUnavailable("no product-terms port wired to decisioning: pass apr= (lending's offer_terms)")
        terms = apr(product.servicing, quantize_fen(offered), pricing.net_rate, tenor, on)
        annual = terms.apr
        disclosure = apr_disclosure(quantize_fen(offered), tenor, pricing.net_rate, terms, pricing.gross_rate,
                                    app.subsidy_rate, app.subsidy_provider)
    return DecisionResult(decision, reasons=tuple(reasons), offered_amount=quantize_fen(offered), tenor_months=tenor,
                          pricing=pricing, limit=limit, apr=annual, disclosure=disclosure, **common)


class DecisionService:
    def __init__(self, engine: Engine, *, assess: Assess | None = None, apr: AprPort | None = None,
                 anchor: Anchor | None = None, policy: DecisionPolicy | None = None,
                 clock: Callable[[], datetime] = utc_now, consent: ConsentCheck | None = None,
                 risk_engine: Callable[[], RiskEngine | None] | None = None, core_of: CoreOf = _no_chain,
                 offers: OfferPort | None = None, events: Events | None = None):
        self.engine = engine
        self.events = events  # webhooks: decision.made, in the deciding transaction (docs/api.md)
        self.offers = offers  # lending's offer of an approval, in the approving transaction
        self.core_of = core_of
        self.assess = assess
        self.consent = consent
        # The platform's risk engine once a model is trained (looked for on every application), else None.
        self.risk_engine = risk_engine or (lambda: None)
        self.apr = apr
        self.anchor = anchor
        self.policy = policy or DecisionPolicy()
        self.clock = clock
        self._compiled: dict[tuple[str, int], CompiledStrategy] = {}
        self._default_deployed = False  # deployments are append-only: once one exists, it stays

    # --- strategies -----------------------------------------------------------------------------

    def publish(self, content: str | bytes | Mapping[str, Any], *, by: str, name: str = "default",
                note: str | None = None, activate: bool = True) -> dict[str, Any]:
        """Validate (compile, check every cell, evaluate on samples) and store a new immutable version;
        with activate, it becomes the champion (no challenger)."""
        if not by.strip():
            raise ValidationError("publishing needs the name of who publishes")
        if not name.strip() or len(name) > 64:
            raise ValidationError("a strategy name is 1..64 characters")
        compiled, warnings = compile_strategy(content)
        for _attempt in range(3):
            try:
                with write_transaction(self.engine) as conn:
                    version = int(store.latest_strategy_version(conn, name) or 0) + 1
                    store.insert_strategy(conn, name=name, version=version, content=compiled.graph,
                                          sha256=compiled.sha256, published_by=by, published_at=self.clock(), note=note)
                    if activate:
                        self._deploy(conn, name, version, None, 0, "deploy", by)
                break
            except IntegrityError:  # a concurrent publish took the version number; take the next
                continue
        else:
            raise Conflict(f"could not publish {name}: concurrent publishes kept taking the version number")
        self._compiled[(name, version)] = compiled
        return {"name": name, "version": version, "sha256": compiled.sha256, "published_by": by,
                "activated": activate, "warnings": warnings}

    def ensure_default(self) -> None:
        """The packaged default strategy, published by 'system' as the champion, if none is deployed."""
        if self.deployment("default") is None:
            self.publish(default_strategy_text(), by="system", name="default", note="packaged default strategy")

    def versions(self, name: str = "default") -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return store.strategy_versions(conn, name)

    def strategy_content(self, name: str, version: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            content = store.strategy_content(conn, name, version)
        if content is None:
            raise NotFound(f"no strategy {name} version {version}")
        return content

    def compiled(self, name: str, version: int) -> CompiledStrategy:
        key = (name, version)
        if key not in self._compiled:
            self._compiled[key], _ = compile_strategy(self.strategy_content(name, version), samples=())
        return self._compiled[key]

    def deploy(self, name: str, champion: int, *, by: str, challenger: int | None = None,
               challenger_bps: int = 0) -> dict[str, Any]:
        """Put versions in force: the champion decides, the challenger decides `challenger_bps`/10000
        of enterprises (chosen by a stable hash)."""
        if not by.strip():
            raise ValidationError("a deployment needs the name of who deploys")
        if not 0 <= challenger_bps <= 10_000:
            raise ValidationError("challenger share is 0..10000 basis points")
        if (challenger is None) != (challenger_bps == 0):
            raise ValidationError("a challenger needs a share above zero, and a share needs a challenger")
        for version in (champion, challenger):
            if version is not None:
                self.strategy_content(name, version)  # NotFound for an unknown version
        with write_transaction(self.engine) as conn:
            self._deploy(conn, name, champion, challenger, challenger_bps, "deploy", by)
        return self.deployment(name) or {}

    def rollback(self, name: str = "default", *, by: str) -> dict[str, Any]:
        """Return to the deployment before the one in force (recorded as a new 'rollback' row)."""
        with write_transaction(self.engine) as conn:
            rows = store.deployments(conn, name)
            if not rows:
                raise NotFound(f"strategy {name} has never been deployed")
            current = rows[0]
            previous = next((r for r in rows[1:] if (r.champion_version, r.challenger_version, r.challenger_bps)
                             != (current.champion_version, current.challenger_version, current.challenger_bps)), None)
            if previous is None:
                raise Conflict(f"strategy {name} has no previous deployment to roll back to")
            self._deploy(conn, name, previous.champion_version, previous.challenger_version, previous.challenger_bps,
                         "rollback", by)
        return self.deployment(name) or {}

    def _deploy(self, conn: Any, name: str, champion: int, challenger: int | None, bps: int, action: str, by: str) -> None:
        store.insert_deployment(conn, strategy_name=name, champion_version=champion, challenger_version=challenger,
                                challenger_bps=bps, action=action, deployed_by=by, deployed_at=self.clock())

    def deployment(self, name: str = "default") -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return store.deployment(conn, name)

    # --- deciding -------------------------------------------------------------------------------

    def submit(self, app: Application, applicant: Applicant, *,
               assessment: RiskAssessment | Mapping[str, Any] | None = None, strategy: str = "default") -> dict[str, Any]:
        """The credit-application use case: the lender's consent (checked, and logged in the access
        log), the risk engine's assessment, the decision, its ledger anchor and the lender's ownership of
        the application commit in one transaction, or none of them does."""
        if applicant.consent_of is not None and self.consent is not None:
            # A cheap pre-check, so a refused lender costs no assessment; the check that counts (and is
            # logged with the decision) runs again inside the transaction below.
            if self.consent(applicant.consent_of, app.enterprise_id, detail="credit application", log=False):
                self._refuse(applicant.consent_of, app.enterprise_id)
        assessment = self._assessment(app, applicant, assessment)

        def within(conn: Connection, application_id: int) -> None:
            if applicant.consent_of is not None and self.consent is not None:
                refusal = self.consent(applicant.consent_of, app.enterprise_id, detail="credit application",
                                       conn=conn)
                if refusal:  # withdrawn meanwhile: everything above rolls back; the refusal stays logged
                    raise Forbidden(refusal)
            if applicant.owner_tenant_id is not None:
                set_owner_in(conn, "application", application_id, applicant.owner_tenant_id, app.enterprise_id)

        return self.decide(app, assessment, strategy=strategy, within=within)

    def _refuse(self, lender: str, enterprise_id: int) -> NoReturn:
        assert self.consent is not None
        raise Forbidden(self.consent(lender, enterprise_id, detail="credit application") or "no consent")

    def _assessment(self, app: Application, applicant: Applicant,
                    given: RiskAssessment | Mapping[str, Any] | None) -> RiskAssessment | None:
        """The platform's assessment: the `assess` port's when one is fixed (tests, benchmarks, the
        demo's batch ratings), else the risk engine's (the champion model, or the bootstrap scorecard
        before one). An assessment given by the applicant is always refused: nobody asserts its own
        grade (None: `decide` asks the `assess` port)."""
        if given is not None:
            raise ValidationError("assessment: the risk assessment is computed by the platform's risk engine; "
                                  "do not send one / 风险评估由平台风险引擎计算，请勿在申请中提交")
        if self.assess is not None:
            return None  # the assess port decides
        engine = self.risk_engine()
        if engine is None:
            return None  # no engine wired: `decide` refuses (503)
        if applicant.risk_lender is None:
            raise ValidationError("lender: the operator names the lender whose consent the risk engine's features use")
        return engine(app.enterprise_id, applicant.risk_lender)

    def decide(self, app: Application, assessment: RiskAssessment | None = None, *,
               strategy: str = "default", within: Callable[[Connection, int], None] | None = None) -> dict[str, Any]:
        """Decide an application, store it with its decision, anchor the decision in the ledger; `within`
        (the submit use case's consent log and ownership) runs in the same transaction."""
        validate_application(app, self.policy.products)
        if assessment is None:
            if self.assess is None:
                raise ServiceUnavailable("no risk engine is wired to the decision service: pass the assessment")
            assessment = self.assess(app.enterprise_id)
        if strategy == "default" and not self._default_deployed:
            self.ensure_default()
            self._default_deployed = True
        try:
            # One transaction from reading the deployment and the exposure to storing the decision
            # and its ledger anchor: two decisions cannot both spend the same headroom (SQLite
            # serialises writers with BEGIN IMMEDIATE; on PostgreSQL the borrower's and the core
            # enterprise's rows are locked, in id order), and a decision is never stored unanchored.
            with write_transaction(self.engine) as conn:
                deployment = store.deployment(conn, strategy)
                if deployment is None:
                    raise NotFound(f"strategy {strategy!r} is not deployed")
                challenger = deployment["challenger_version"] is not None and in_challenger(
                    str(app.enterprise_id), deployment["challenger_bps"], self.policy.split_salt)
                version = deployment["challenger_version"] if challenger else deployment["champion_version"]
                compiled = self.compiled(strategy, version)  # compiled once per version, then cached
                core = app.core_enterprise_id
                if core is None:
                    core = self.core_of(conn, app.enterprise_id)
                wanted = sorted({app.enterprise_id} | ({core} if core is not None else set()))
                found = store.lock_enterprises(conn, wanted)
                for eid in wanted:
                    if eid not in found:
                        raise NotFound(f"no enterprise {eid}")
                exposure = self._exposure(conn, app.enterprise_id, core)
                now = self.clock()
                result = evaluate_application(compiled, app, assessment, self.policy, exposure, business_date(now),
                                              strategy_name=strategy, version=version,
                                              arm="challenger" if challenger else "champion",
                                              has_core=core is not None, apr=self.apr)
                body = result.to_json() | {"assessment": assessment.to_json(), "exposure": exposure.to_json()}
                app_id = store.insert_application(conn, {
                    "ref": app.ref, "enterprise_id": app.enterprise_id, "core_enterprise_id": core,
                    "product": app.product, "amount": app.amount, "tenor_months": app.tenor_months,
                    "inputs": {"application": app.to_json(), "assessment": assessment.to_json()},
                    "status": STATUS_OF[result.decision],
                    "approved_amount": result.offered_amount if result.decision == "approve" else None,
                    "received_at": now, "updated_at": now})
                decision_id = self._insert_decision(conn, app_id, "strategy", result.decision, body, now,
                                                    f"strategy:{strategy}@{version}", strategy, version, result.arm,
                                                    result.offered_amount, result.tenor_months,
                                                    None if result.pricing is None else str(result.pricing.gross_rate))
                if self.anchor:
                    self.anchor(conn, str(decision_id))
                if within is not None:
                    within(conn, app_id)
                offer = None
                if result.decision == "approve" and result.offered_amount and result.pricing is not None:
                    offer = self._offer(conn, app_id, decision_id, app, result.offered_amount, result.tenor_months,
                                        result.pricing.gross_rate, business_date(now))
                self._decision_made(conn, app_id, decision_id, app.enterprise_id, app.product, result.decision,
                                    result.offered_amount, result.tenor_months, offer, now)
        except IntegrityError as exc:
            if app.ref is not None and any(k in str(exc.orig) for k in ("credit_applications.ref", "uq_credit_applications_ref")):
                raise Conflict(f"an application with ref {app.ref!r} was already decided") from None
            raise
        return {"application_id": app_id, "decision_id": decision_id, "status": STATUS_OF[result.decision]} | body | {
            "offer": offer}

    def _decision_made(self, conn: Connection, application_id: int, decision_id: int, enterprise_id: int, product: str,
                       decision: str, amount: Decimal | None, tenor: int | None, offer: Mapping[str, Any] | None,
                       now: datetime) -> None:
        """decision.made, to the lender owning the application and the enterprise (ids and amounts only)."""
        if self.events is None:
            return
        self.events(conn, "decision.made", {
            "application_id": application_id, "decision_id": decision_id, "enterprise_id": enterprise_id,
            "product": product, "decision": decision, "status": STATUS_OF[decision],
            "amount": None if amount is None else str(amount), "tenor_months": tenor,
            "offer_id": None if offer is None else offer.get("id"), "decided_at": now.isoformat()},
            enterprise_id=enterprise_id)

    def _offer(self, conn: Connection, application_id: int, decision_id: int, app: Application, amount: Decimal,
               tenor: int | None, annual_rate: Decimal, on: date) -> dict[str, Any] | None:
        """The approval's offer (lending's offer port), in the approving transaction; None when unwired."""
        if self.offers is None or tenor is None:
            return None
        product = self.policy.products[app.product]
        return self.offers(conn, ApprovedTerms(application_id, decision_id, app.enterprise_id, app.product,
                                               product.servicing, amount, tenor, annual_rate, app.subsidy_rate, on))

    @staticmethod
    def _insert_decision(conn: Any, app_id: int, source: str, decision: str, body: dict[str, Any], now: datetime,
                         by: str, name: str | None, version: int | None, arm: str | None,
                         amount: Decimal | None, tenor: int | None, rate: str | None) -> int:
        return store.insert_decision(conn, {
            "application_id": app_id, "source": source, "decision": decision, "strategy_name": name,
            "strategy_version": version, "arm": arm, "offered_amount": amount, "tenor_months": tenor, "rate": rate,
            "decided_by": by, "result": plain(body), "decided_at": now})

    @staticmethod
    def _exposure(conn: Any, enterprise_id: int, core: int | None) -> Exposure:
        borrower = store.borrower_exposure(conn, enterprise_id)
        chain = ZERO
        if core is not None:
            chain = store.chain_exposure(conn, core)
        return Exposure(quantize_fen(borrower), quantize_fen(chain))  # SUM keeps the Money type: yuan

    # --- replay ---------------------------------------------------------------------------------

    def replay(self, draft: str | bytes | Mapping[str, Any], *, name: str = "default", limit: int | None = None,
               batch: int = 2_000, workers: int | None = None) -> dict[str, Any]:
        """What a draft strategy would have decided on past applications, against what was decided:
        approval rate, expected loss and volume, before and after, and the decision changes. Nothing
        is stored. The draft is evaluated with zen-engine's batch evaluation; above 20,000
        applications the work is split over `workers` processes (default: up to 2, one per core)."""
        draft_compiled, warnings = compile_strategy(draft)
        with self.engine.connect() as conn:
            rows = store.replay_rows(conn, name, limit)  # the JSON as text, parsed in the workers
        on = business_date(self.clock())
        workers = workers if workers is not None else (min(2, os.cpu_count() or 1) if len(rows) > 20_000 else 1)
        if workers <= 1:
            parts = [_replay_part(draft_compiled.graph, rows, self.policy, on, batch)]
        else:
            size = -(-len(rows) // workers)
            chunks = [rows[i:i + size] for i in range(0, len(rows), size)]
            # spawn, not fork: zen-engine runs its own threads, which a forked child would not have
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                parts = list(pool.map(_replay_part, [draft_compiled.graph] * len(chunks), chunks,
                                      [self.policy] * len(chunks), [on] * len(chunks), [batch] * len(chunks)))
        return _replay_report(parts, len(rows)) | {"strategy": name, "warnings": warnings}

    # --- review queue ---------------------------------------------------------------------------

    def queue(self, limit: int = 100) -> list[dict[str, Any]]:
        """Referred applications (and those awaiting a second officer), oldest first."""
        return self.queue_page(PageParams(limit, None))[0]

    def queue_page(self, page: PageParams, *, enterprise_id: int | None = None,
                   among: Select | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the review queue (oldest first) and the next cursor: of one enterprise, and/or
        of the applications whose ids `among` selects (a subquery: a lender's own applications)."""
        with self.engine.connect() as conn:
            return store.review_queue_page(conn, page, enterprise_id=enterprise_id, among=among)

    def applications_page(self, page: PageParams, *, status: str | None = None, enterprise_id: int | None = None,
                          among: Select | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of applications, newest first, filtered (`among`: a lender's own, as a subquery)."""
        if status is not None and status not in APPLICATION_STATUSES:
            raise ValidationError(f"status: must be one of {', '.join(APPLICATION_STATUSES)}, not {status!r}")
        with self.engine.connect() as conn:
            return store.applications_page(conn, page, status=status, enterprise_id=enterprise_id, among=among)

    def application(self, application_id: int) -> dict[str, Any]:
        """An application with the evidence an officer needs: inputs, risk assessment (grade, PD,
        sub-scores, features, reasons), every decision (reasons, limits, pricing, rule trace), reviews."""
        with self.engine.connect() as conn:
            app = store.application(conn, application_id)
            if app is None:
                raise NotFound(f"no credit application {application_id}")
            enterprise = store.enterprise_summary(conn, app["enterprise_id"])
            decisions = store.decisions_of(conn, application_id)
            reviews = store.reviews_of(conn, application_id)
        return {**{k: v for k, v in dict(app).items()}, "enterprise": dict(enterprise or {}),
                "decisions": [dict(d) for d in decisions], "reviews": [dict(r) for r in reviews]}

    def review(self, application_id: int, *, officer: str, action: str, reason: str, amount: object = None,
               tenor_months: int | None = None, rate: object = None) -> dict[str, Any]:
        """An officer's action on a referred application. The reason is mandatory. Approvals and
        counter-offers above the four-eyes amount need a second, different officer to approve."""
        if action not in ("approve", "decline", "counter_offer"):
            raise ValidationError(f"action must be approve, decline or counter_offer, not {action!r}")
        if not officer.strip():
            raise ValidationError("a review needs the officer's name")
        if not reason.strip():
            raise ValidationError("a review needs a reason")
        now = self.clock()
        with write_transaction(self.engine) as conn:
            app = store.application(conn, application_id)
            if app is None:
                raise NotFound(f"no credit application {application_id}")
            if app["status"] not in ("referred", "awaiting_second_approval"):
                raise Conflict(f"application {application_id} is {app['status']}, not awaiting review")
            application = Application.from_json(app["inputs"]["application"])
            product = self.policy.products[application.product]
            first = store.first_strategy_decision(conn, application_id)
            pending = None
            if app["status"] == "awaiting_second_approval":
                pending = store.latest_review(conn, application_id)
            terms = self._review_terms(action, application, product, first, pending, amount, tenor_months, rate)
            store.insert_review(conn, application_id=application_id, officer=officer, action=action, reason=reason,
                                amount=terms[0] if terms else None, tenor_months=terms[1] if terms else None,
                                rate=str(terms[2]) if terms else None, reviewed_at=now)
            final = True
            officers = [officer]
            if action != "decline":
                if pending is not None:
                    if pending["officer"] == officer:
                        raise Conflict(f"four-eyes: application {application_id} was approved by {officer}; "
                                       "a second, different officer must confirm it")
                    same = (pending["amount"], pending["tenor_months"], pending["rate"]) == (terms[0], terms[1], str(terms[2]))
                    final = action == "approve" and same
                    officers = [pending["officer"], officer]
                else:
                    final = terms[0] <= self.policy.four_eyes_amount
            if not final:
                store.update_application(conn, application_id, status="awaiting_second_approval", updated_at=now)
                return {"application_id": application_id, "status": "awaiting_second_approval",
                        "four_eyes": True, "pending": {"officer": officer, "action": action,
                                                       "amount": terms[0], "tenor_months": terms[1], "rate": str(terms[2])}}
            decision = "decline" if action == "decline" else ("counter_offer" if (pending and pending["action"] == "counter_offer")
                                                              or action == "counter_offer" else "approve")
            body: dict[str, Any] = {"decision": decision, "reasons": [{"code": f"REVIEW_{action.upper()}", "zh": reason,
                                                                        "en": reason}],
                                    "officers": officers, "application": application.to_json()}
            if terms is not None:
                net = max(ZERO, terms[2] - application.subsidy_rate)
                if self.apr is None:
                    raise ServiceUnavailable("no product-terms port wired to decisioning: pass apr=")
                offer = self.apr(product.servicing, terms[0], net, terms[1], business_date(now))
                body |= {"offered_amount": str(terms[0]), "tenor_months": terms[1], "rate": str(terms[2]),
                         "net_rate": str(net), "apr": str(offer.apr),
                         "disclosure": apr_disclosure(terms[0], terms[1], net, offer, terms[2], application.subsidy_rate,
                                                      application.subsidy_provider)}
            decision_id = self._insert_decision(conn, application_id, "review", decision, body, now, ", ".join(officers),
                                                None, None, None, terms[0] if terms else None,
                                                terms[1] if terms else None, str(terms[2]) if terms else None)
            store.update_application(conn, application_id, status=STATUS_OF[decision],
                                     approved_amount=terms[0] if terms else None, updated_at=now)
            if self.anchor:
                self.anchor(conn, str(decision_id))
            offer = None
            if terms is not None:  # an approval or a counter-offer: its offer, with the approved terms
                offer = self._offer(conn, application_id, decision_id, application, terms[0], terms[1], terms[2],
                                    business_date(now))
            self._decision_made(conn, application_id, decision_id, application.enterprise_id, application.product,
                                decision, terms[0] if terms else None, terms[1] if terms else None, offer, now)
        return {"application_id": application_id, "decision_id": decision_id, "status": STATUS_OF[decision]} | body | {
            "offer": offer}

    def _review_terms(self, action: str, app: Application, product: Product, first: Mapping[str, Any] | None,
                      pending: Mapping[str, Any] | None, amount: object, tenor: int | None, rate: object
                      ) -> tuple[Decimal, int, Decimal] | None:
        if action == "decline":
            return None
        if action == "approve":
            if any(v is not None for v in (amount, tenor, rate)):
                raise ValidationError("approve takes the proposed terms; to change them, make a counter_offer")
            if pending is not None:
                return pending["amount"], int(pending["tenor_months"]), Decimal(pending["rate"])
            if first is None or first["offered_amount"] is None or first["rate"] is None or not first["offered_amount"] > 0:
                raise ValidationError("the strategy proposed no terms: make a counter_offer with amount, tenor and rate")
            return first["offered_amount"], int(first["tenor_months"]), Decimal(first["rate"])
        if amount is None or tenor is None or rate is None:
            raise ValidationError("a counter_offer needs amount, tenor_months and rate")
        value = quantize_fen(to_money(amount))
        annual = to_rate(rate, "rate")
        counter = Application(app.enterprise_id, app.product, value, int(tenor))
        validate_application(counter, self.policy.products)
        ceiling = min(self.policy.pricing.ceiling_lpr_multiple
                      * self.policy.curve.fixing_on(business_date(self.clock())).one_year, self.policy.pricing.ceiling_abs)
        if not ZERO < annual <= ceiling:
            raise ValidationError(f"rate {annual} must be above 0 and at most the legal ceiling {ceiling}")
        return value, int(tenor), annual


# --- replay ------------------------------------------------------------------------------------


def _evaluate_all(strategy: CompiledStrategy, contexts: Sequence[Mapping[str, Any]], batch: int) -> list[Any]:
    """Evaluate many contexts with zen-engine's `evaluate_batch` (its own threads; measured ~4x less
    CPU per evaluation than one `evaluate` call at a time, see docs/benchmarks.md). A failed
    evaluation comes back as an exception, which replay turns into a referral."""
    engine = zen.ZenEngine({"loader": {"type": "static", "content": {"draft": strategy.graph}}})
    out: list[Any] = []
    for start in range(0, len(contexts), batch):
        answers = engine.evaluate_batch([{"key": "draft", "context": c} for c in contexts[start:start + batch]])
        out.extend(a["data"]["result"] if a.get("success") else RuntimeError(str(a.get("error"))) for a in answers)
    return out


def _replay_part(graph: Mapping[str, Any], rows: Sequence[tuple[str, str, Decimal | None, str | None, str | None]],
                 policy: DecisionPolicy, on: date, batch: int) -> dict[str, Any]:
    """Replay of one share of past applications (runs in a worker process): rows are (inputs,
    decision, offered amount, exposure, limit) as stored, the JSON ones as text."""
    past = []
    for inputs_text, old, amount, exposure_text, limit_text in rows:
        inputs = orjson.loads(inputs_text)
        recorded = {"exposure": orjson.loads(exposure_text) if exposure_text else None,
                    "limit": orjson.loads(limit_text) if limit_text else None}
        past.append((Application.from_json(inputs["application"]), RiskAssessment.from_json(inputs["assessment"]),
                     old, amount, recorded))
    return _tally(compiled_graph(graph), past, policy, on, batch)


def _tally(draft: CompiledStrategy, past: Sequence[tuple[Application, RiskAssessment, str, Decimal | None, Any]],
           policy: DecisionPolicy, on: date, batch: int) -> dict[str, Any]:
    contexts = [strategy_context(app, assessment) for app, assessment, *_ in past]
    results = _evaluate_all(draft, contexts, batch)
    before = {"approved": 0, "volume": ZERO, "expected_loss": ZERO}
    after = {"approved": 0, "volume": ZERO, "expected_loss": ZERO}
    changes: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    for (app, assessment, old, old_amount, old_body), result in zip(past, results, strict=True):
        recorded = old_body if isinstance(old_body, dict) else {}
        exposure = Exposure(Decimal((recorded.get("exposure") or {}).get("borrower", "0")),
                            Decimal((recorded.get("exposure") or {}).get("core", "0")))
        has_core = (recorded.get("limit") or {}).get("core_headroom") is not None
        if isinstance(result, BaseException):
            new = DecisionResult("refer", app, "draft", None, "draft", (NO_DECISION,))
        else:
            new = evaluate_application(draft, app, assessment, policy, exposure, on, strategy_name="draft",
                                       has_core=has_core, trace=False, disclose=False, outcome_result=result)
        if old == "approve":
            before["approved"] += 1
            before["volume"] += old_amount or ZERO
            before["expected_loss"] += quantize_fen(assessment.pd * policy.products[app.product].lgd * (old_amount or ZERO))
        if new.decision == "approve":
            after["approved"] += 1
            after["volume"] += new.offered_amount or ZERO
            after["expected_loss"] += new.expected_loss
        if old != new.decision:
            changes[f"{old}->{new.decision}"] += 1
            if len(examples) < 20:
                examples.append({"enterprise_id": app.enterprise_id, "ref": app.ref, "was": old, "now": new.decision,
                                 "reasons": [r.code for r in new.reasons]})
    return {"before": before, "after": after, "changes": changes, "examples": examples}


def _replay_report(parts: Sequence[Mapping[str, Any]], n: int) -> dict[str, Any]:
    def total(side: str) -> dict[str, Any]:
        approved = sum(p[side]["approved"] for p in parts)
        volume = quantize_fen(sum((p[side]["volume"] for p in parts), ZERO))
        loss = quantize_fen(sum((p[side]["expected_loss"] for p in parts), ZERO))
        rate = (Decimal(approved) / n).quantize(Decimal("0.0001")) if n else Decimal("0")
        return {"approved": approved, "approval_rate": str(rate), "volume": str(volume), "expected_loss": str(loss)}

    changes: Counter[str] = Counter()
    for p in parts:
        changes.update(p["changes"])
    b, a = total("before"), total("after")
    return {"applications": n, "current": b, "draft": a,
            "delta": {"approval_rate": str(Decimal(a["approval_rate"]) - Decimal(b["approval_rate"])),
                      "volume": str(Decimal(a["volume"]) - Decimal(b["volume"])),
                      "expected_loss": str(Decimal(a["expected_loss"]) - Decimal(b["expected_loss"]))},
            "changed": sum(changes.values()), "changes": dict(sorted(changes.items())),
            "examples": [e for p in parts for e in p["examples"]][:20]}


def replay_decisions(draft: CompiledStrategy, past: Sequence[tuple[Application, RiskAssessment, str, Decimal | None, Any]],
                     policy: DecisionPolicy, on: date, *, batch: int = 2_000) -> dict[str, Any]:
    """Decide past applications with the draft in this process (no disclosure, no trace, exposure
    as recorded) and compare with what was decided."""
    return _replay_report([_tally(draft, past, policy, on, batch)], len(past))
