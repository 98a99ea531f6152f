"""Level-based reconcile of CheckoutRegions (and the PSPRoutes they use).

Pure parts: ``plan`` (desired vs live: apply / prune), ``status`` (conditions, health rollup),
``index`` (which regions a PSPRoute selects). I/O parts delegate every cluster call to
``checkout_kube``: ``region`` (one reconcile), ``operator`` (what the kopf handlers call).
"""
