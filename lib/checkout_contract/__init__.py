"""What the operator renders and the checkout services read: the one contract of both sides.

Pure: pydantic models, constants and arithmetic; no network, no asyncio, no Kubernetes client.
Both ``checkout_operator`` and ``checkout_services`` import it; it imports neither.

- ``model``: the base of every config file model (strict, camelCase on the wire).
- ``config``: the region config (ConfigMap ``checkout-region``).
- ``routing``: the fleet routing (ConfigMap ``checkout-fleet-routing``).
- ``payments``: the PSP routing (ConfigMap ``checkout-psp-routing``).
- ``pricing``: the pricing config (ConfigMap ``checkout-pricing``).
- ``classification``: the data classes of the event topics (replication, residency).
- ``env``: every environment variable name the rendered pods carry.
- ``lease``: the market write-lease contract (names, annotations, expiry arithmetic).
- ``urls``: the one rule for URLs that receive credentials or card data (https, loopback http).
- ``timeutil``: UTC timestamps in the Kubernetes wire forms.
"""
