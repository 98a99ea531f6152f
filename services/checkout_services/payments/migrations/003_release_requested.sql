-- The checkout saga stopped waiting for a capture the provider had accepted (Adyen `received`)
-- and compensated: the outcome, when it comes, is undone here (a late CAPTURE is refunded, a
-- CAPTURE_FAILED voided), once. See payments/release.py.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS release_requested_at timestamptz;
ALTER TABLE payments ADD COLUMN IF NOT EXISTS release_settled_at timestamptz;
