-- Personal data (GDPR): the customer's profile lives in its home region's `customers`; copies
-- pulled from peers (only where the market's residency allows: MirrorMaker 2 filters) live in
-- `customer_replicas`. Orders point at the customer by id only, so erasure anonymises an order
-- by clearing `customer_id` while its amounts stay. `erasures` proves an erasure ran without
-- keeping the person (a SHA-256 of the customer id).
ALTER TABLE orders ADD COLUMN customer_id text;
CREATE INDEX orders_customer ON orders (customer_id) WHERE customer_id IS NOT NULL;

CREATE TABLE customers (
    customer_id  text PRIMARY KEY,
    market       text        NOT NULL CHECK (market ~ '^[A-Z]{2}$'),
    email        text,
    name         text,
    address      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE customer_replicas (
    customer_id    text PRIMARY KEY,
    market         text        NOT NULL CHECK (market ~ '^[A-Z]{2}$'),
    source_region  text        NOT NULL,
    email          text,
    name           text,
    address        jsonb,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE erasures (
    subject_hash  text PRIMARY KEY,
    market        text        NOT NULL,
    origin        text        NOT NULL CHECK (origin IN ('home', 'replica')),
    erased_at     timestamptz NOT NULL DEFAULT now()
);
