"""One module per operation: authorize, capture, void, refund (plus the shared modify loop)."""
