"""Shared pytest configuration."""

# Real local stack fixtures (postgres, redis, kafka_clusters, temporal, kube, kube_factory,
# helm_bin, kubectl_bin): see hack/checkout_stack/pytest_plugin.py and README "Local stack".
pytest_plugins = ["checkout_stack.pytest_plugin"]
