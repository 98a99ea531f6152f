-- The global availability view (aggregates only: no person). Every region mirrors every
-- region's stock deltas (checkout.stock-deltas, replicated everywhere) and applies each once
-- (stock_applied) into global_stock, its view of each region's available stock. Each region's
-- checkpoints (its true stock at a point of its delta stream) are compared with the view at the
-- same point: a difference is a divergence (metric + INVENTORY_DIVERGENCE event), kept here.
CREATE TABLE global_stock (
    region      text        NOT NULL,
    sku         text        NOT NULL,
    available   bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region, sku)
);

CREATE TABLE stock_applied (
    event_id    uuid PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stock_checkpoints (
    source_region  text PRIMARY KEY,
    event_id       uuid        NOT NULL,
    diverged_skus  integer     NOT NULL,
    detail         jsonb       NOT NULL,
    checked_at     timestamptz NOT NULL DEFAULT now()
);
