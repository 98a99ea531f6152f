"""Pure renderers: from API objects to plain Kubernetes objects. No cluster, no network."""
