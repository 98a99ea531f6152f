"""The operator's own cluster code, on top of the project's one client (:mod:`checkout_kube`).

- ``remote``: a client for another cluster from a kubeconfig kept in a Secret.
"""
