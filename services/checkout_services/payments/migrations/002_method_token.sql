-- The payment method token the client sent (a Stripe PaymentMethod id, Adyen's paymentMethod
-- object from its client library, an APM's details, the return URL): never card data. Kept so
-- that a replay of the authorization (same idempotency key) sends the same parameters.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS method_token jsonb;
