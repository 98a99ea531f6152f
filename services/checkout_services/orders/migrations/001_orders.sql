-- Orders (written by the saga's place-order step, with ORDER_PLACED in the same transaction)
-- and failed checkouts (the "notify" compensation records them).
CREATE TABLE orders (
    checkout_id   text PRIMARY KEY,
    market        text        NOT NULL,
    currency      text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    total         bigint      NOT NULL CHECK (total >= 0),
    snapshot_id   text        NOT NULL,
    lines         jsonb       NOT NULL,
    state         text        NOT NULL CHECK (state IN
                  ('placed', 'fulfilment_requested', 'capture_failed', 'compensated')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_state ON orders (state);

CREATE TABLE checkout_failures (
    checkout_id text PRIMARY KEY,
    reason      text        NOT NULL,
    detail      text        NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);
