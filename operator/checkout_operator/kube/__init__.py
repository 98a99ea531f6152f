"""The cluster layer: the only code (besides kopf itself) that talks to a Kubernetes API server.

- ``config``: kubeconfig / in-cluster credentials -> ``Credentials`` (secrets never in repr).
- ``errors``: typed API errors (NotFound, Conflict, Forbidden, Invalid with causes, ...).
- ``discovery``: GVK -> plural + scope, from the server's discovery documents, cached.
- ``client``: one shared ``httpx.AsyncClient`` per cluster; get, list, server-side apply,
  delete, status patch, events; counts its write requests.
- ``remote``: a client for another cluster from a kubeconfig kept in a Secret.
"""
