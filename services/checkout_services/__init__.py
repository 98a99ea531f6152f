"""The async checkout services that checkout-operator deploys.

This package never imports ``checkout_operator``; the operator may import the services'
config models, so one schema defines each rendered ConfigMap.
"""

__version__ = "0.1.0"
