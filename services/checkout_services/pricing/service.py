"""Quotes: line prices, promotion, shipping and tax computed concurrently (asyncio.gather),
then frozen as a snapshot in Redis with a TTL (the quote the checkout pays)."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import redis.asyncio as aioredis
from openfeature import api as openfeature
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from checkout_contract import pricing as config
from checkout_services.common import ids, money, settings
from checkout_services.pricing import exceptions, schemas

PREFIX: Final = "pricing:snapshot:"


def snapshot_key(snapshot_id: str, owner: str | None) -> str:
    """The Redis key of a snapshot: under its owner's tag (principal.tag), so another
    principal's lookup of the same id finds nothing (404). ``None``: the check is off."""
    return PREFIX + (f"{owner}:{snapshot_id}" if owner else snapshot_id)


FLAG_DOMAIN: Final = "checkout-pricing"


def flag_provider(flags: dict[str, bool]) -> InMemoryProvider:
    return InMemoryProvider(
        {
            name: InMemoryFlag("on" if on else "off", {"on": True, "off": False})
            for name, on in flags.items()
        }
    )


class ConfigSource:
    """The pricing file, re-read when it changes; its flags feed the OpenFeature provider."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._mtime = -1.0
        self._cfg: config.PricingConfig | None = None

    def current(self) -> config.PricingConfig:
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError:
            mtime = self._mtime
        if self._cfg is None or mtime != self._mtime:
            cfg = settings.load_model(self.path, config.PricingConfig, "pricing config")
            openfeature.set_provider(flag_provider(cfg.flags), FLAG_DOMAIN)
            self._cfg, self._mtime = cfg, mtime
        return self._cfg


class PricingService:
    def __init__(self, source: ConfigSource, redis: aioredis.Redis) -> None:
        self.source = source
        self.redis = redis
        self.flags = openfeature.get_client(FLAG_DOMAIN)

    async def price_lines(
        self, cfg: config.PricingConfig, req: schemas.QuoteRequest
    ) -> list[schemas.PricedLine]:
        out = []
        for i, line in enumerate(req.lines):
            prices = cfg.catalog.get(line.sku)
            if prices is None:
                raise exceptions.Unpriceable(f"unknown SKU {line.sku!r}", field=f"lines.{i}.sku")
            unit = prices.get(req.currency)
            if unit is None:
                raise exceptions.Unpriceable(
                    f"{line.sku} has no price in {req.currency}", field="currency"
                )
            out.append(
                schemas.PricedLine(
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_amount=unit,
                    amount=unit * line.quantity,
                )
            )
        return out

    async def promotion(
        self, cfg: config.PricingConfig, req: schemas.QuoteRequest, subtotal: int
    ) -> tuple[int, str | None]:
        if req.promo_code is None:
            return 0, None
        promo = next((p for p in cfg.promotions if p.code == req.promo_code), None)
        if promo is None:
            raise exceptions.Unpriceable(
                f"unknown promotion code {req.promo_code!r}", field="promo_code"
            )
        context = EvaluationContext(attributes={"country": req.country, "currency": req.currency})
        if not await self.flags.get_boolean_value_async(promo.flag, False, context):
            return 0, None  # switched off: the quote simply has no discount
        if subtotal < promo.min_subtotal.get(req.currency, 0):
            return 0, None
        discount = money.basis_points(subtotal, promo.percent_off_bp) + promo.amount_off.get(
            req.currency, 0
        )
        return min(discount, subtotal), promo.code

    async def shipping(
        self, cfg: config.PricingConfig, req: schemas.QuoteRequest
    ) -> tuple[schemas.ShippingQuote, list[schemas.ShippingQuote]]:
        options = [
            schemas.ShippingQuote(id=o.id, name=o.name, amount=o.amounts[req.currency], days=o.days)
            for o in cfg.shipping.get(req.country, ())
            if req.currency in o.amounts
        ]
        if not options:
            raise exceptions.Unpriceable(
                f"no shipping to {req.country} in {req.currency}", field="country"
            )
        if req.shipping_option is None:
            return options[0], options
        chosen = next((o for o in options if o.id == req.shipping_option), None)
        if chosen is None:
            raise exceptions.Unpriceable(
                f"unknown shipping option {req.shipping_option!r} for {req.country}",
                field="shipping_option",
            )
        return chosen, options

    async def tax_rule(
        self, cfg: config.PricingConfig, req: schemas.QuoteRequest
    ) -> config.TaxRule:
        rule = cfg.tax.get(req.country)
        if rule is None:
            raise exceptions.Unpriceable(f"no tax rule for {req.country}", field="country")
        return rule

    async def quote(self, req: schemas.QuoteRequest, owner: str | None = None) -> schemas.Quote:
        if req.currency not in money.SUPPORTED:
            raise exceptions.Unpriceable(f"currency {req.currency} not supported", field="currency")
        cfg = self.source.current()
        # independent parts in parallel (in production each may be a remote call)
        lines, (shipping, options), rule = await asyncio.gather(
            self.price_lines(cfg, req), self.shipping(cfg, req), self.tax_rule(cfg, req)
        )
        subtotal = sum(line.amount for line in lines)
        discount, applied = await self.promotion(cfg, req, subtotal)
        taxable = subtotal - discount + shipping.amount
        if rule.inclusive:
            tax = taxable - money.apply_rate(
                taxable, money.Decimal(10_000) / money.Decimal(10_000 + rule.rate_bp)
            )
            total = taxable
        else:
            tax = money.basis_points(taxable, rule.rate_bp)
            total = taxable + tax
        expires = datetime.now(UTC) + timedelta(seconds=cfg.snapshot_ttl_seconds)
        quote = schemas.Quote(
            snapshot_id=ids.new(),
            expires_at=expires,
            country=req.country,
            currency=req.currency,
            lines=lines,
            subtotal=subtotal,
            discount=discount,
            promo_applied=applied,
            shipping=shipping,
            shipping_options=options,
            tax=schemas.TaxQuote(
                kind=rule.kind, rate_bp=rule.rate_bp, inclusive=rule.inclusive, amount=tax
            ),
            total=total,
            display_total=money.display(total, req.currency),
        )
        await self.redis.set(
            snapshot_key(quote.snapshot_id, owner),
            quote.model_dump_json(),
            ex=cfg.snapshot_ttl_seconds,
        )
        return quote

    async def snapshot(self, snapshot_id: str, owner: str | None = None) -> schemas.Quote:
        raw = await self.redis.get(snapshot_key(snapshot_id, owner))
        if raw is None:
            raise exceptions.SnapshotNotFound(f"snapshot {snapshot_id} is unknown or expired")
        return schemas.Quote.model_validate(json.loads(raw))
