"""The project's one Kubernetes client: the operator, the services' lease keeper, the gateway's
lease view and the demo use it (``checkout_services`` may not import ``checkout_operator``, so
it is a package of its own). It depends on httpx and PyYAML, never on kopf.

- ``config``: kubeconfig / in-cluster credentials -> ``Credentials`` (secrets never in repr);
  :func:`config.from_kubeconfig_text` is the one kubeconfig parser.
- ``errors``: typed API errors (NotFound, Conflict, Gone, Invalid with causes, ...).
- ``discovery``: GVK -> plural + scope, from the server's discovery documents, cached.
- ``client``: one shared ``httpx.AsyncClient`` per cluster; get, list, watch, server-side
  apply, delete, status patch, events; retries where safe; counts its write requests.
- ``watch``: :func:`watch.list_watch`, the list-then-watch loop (resume, relist on 410, backoff).
- ``backoff``: exponential backoff with full jitter.
"""
