-- Tenant binding (common/principal.py): which principal a checkout id and a customer id
-- belong to, as the keyed hash the gateway-signed principal maps to (no subject id stored).
-- A checkout id is claimed by its first principal before its saga starts; another principal
-- reusing it gets 409 and learns nothing of its outcome, and reads an order only if it owns it.
-- NULL owner: written with the check off (tests), or before this migration.
CREATE TABLE checkout_owners (
    checkout_id  text PRIMARY KEY,
    owner        text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE customers ADD COLUMN owner text;
