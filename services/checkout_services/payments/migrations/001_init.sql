-- Payments and their PSP attempts. Times are timestamptz (UTC); money is integer minor units.
CREATE TABLE payments (
    checkout_id      text PRIMARY KEY,
    amount           bigint NOT NULL CHECK (amount > 0),
    currency         text   NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    country          text   NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    payment_method   text   NOT NULL,
    state            text   NOT NULL,
    -- where the payment was authorized: capture/void/refund go back to exactly here
    provider         text,
    provider_type    text,
    endpoint         text,
    account          text,
    psp_reference    text,
    captured_amount  bigint NOT NULL DEFAULT 0 CHECK (captured_amount >= 0),
    refunded_amount  bigint NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    decline_class    text,
    decline_reason   text,
    action           jsonb,
    lease_owner      text,
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    authorized_at    timestamptz,
    CHECK (refunded_amount <= captured_amount)
);
CREATE INDEX payments_state_updated ON payments (state, updated_at);

CREATE TABLE psp_attempts (
    id                   bigserial PRIMARY KEY,
    checkout_id          text NOT NULL REFERENCES payments (checkout_id),
    operation            text NOT NULL CHECK (operation IN ('authorize', 'capture', 'void', 'refund')),
    attempt_scope        text NOT NULL,
    provider             text NOT NULL,
    provider_type        text NOT NULL,
    endpoint             text NOT NULL,
    account              text NOT NULL,
    psp_idempotency_key  text NOT NULL CHECK (length(psp_idempotency_key) <= 64),
    amount               bigint,
    -- in_flight | succeeded | pending | declined | rejected | not_charged | unknown
    status               text NOT NULL,
    failure_class        text,
    psp_reference        text,
    detail               text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT psp_attempts_operation_once UNIQUE (checkout_id, operation, attempt_scope),
    CONSTRAINT psp_attempts_key_once UNIQUE (psp_idempotency_key)
);
CREATE INDEX psp_attempts_status ON psp_attempts (status, updated_at);

CREATE TABLE webhook_events (
    provider     text NOT NULL,
    event_id     text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    outcome      text NOT NULL,
    PRIMARY KEY (provider, event_id)
);
