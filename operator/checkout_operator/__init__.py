"""checkout-operator: a kopf operator for a multi-region e-commerce checkout.

Layers (enforced by import-linter, see pyproject.toml):

- ``api``: pydantic models of the custom resources; imports no other layer.
- ``render``: pure functions from API objects to plain Kubernetes objects.
- ``kube`` / ``reconcile``: talk to the cluster (apply, prune, status).
- ``handlers`` / ``cli``: thin entry points that only delegate.
"""

__version__ = "0.1.0"
