"""The checkout gateway: the single entry point of a region (auth, limits, routing)."""
