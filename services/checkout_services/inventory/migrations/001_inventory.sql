-- Stock per SKU and reservation tokens. The CHECKs make negative stock impossible; the unique
-- (checkout_id, sku) makes a double reservation of a line impossible.
CREATE TABLE stock (
    sku        text PRIMARY KEY,
    available  integer NOT NULL CHECK (available >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reservations (
    token        uuid PRIMARY KEY,
    checkout_id  text        NOT NULL,
    market       text        NOT NULL,
    sku          text        NOT NULL REFERENCES stock (sku),
    quantity     integer     NOT NULL CHECK (quantity > 0),
    state        text        NOT NULL CHECK (state IN ('held', 'committed', 'released', 'expired')),
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    UNIQUE (checkout_id, sku)
);
CREATE INDEX reservations_held_expiry ON reservations (expires_at) WHERE state = 'held';
