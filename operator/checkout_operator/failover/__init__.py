"""Failover decisions: pure functions from probe history, spec and leases to the next actions.

No I/O here (import-linter contract "failover is pure"): the prober
(``checkout_operator.probes``) and the engine (``checkout_operator.reconcile.failover``) feed
this package with observations and carry out what it returns.
"""
