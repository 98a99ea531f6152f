"""HTTP health probes of the fleet's regions (async httpx). The only network I/O of failover
besides the lease store; results feed the pure ``checkout_operator.failover`` decisions."""
