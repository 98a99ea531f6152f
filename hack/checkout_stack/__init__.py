"""The local stack: real servers on loopback for tests, benchmarks and the demo.

``hack/stack up|down|status|env|build`` and the pytest plugin
(:mod:`checkout_stack.pytest_plugin`) run on this same code.
"""
