"""Replication observed: MirrorMaker 2's lag per peer and topic, read from Kafka.

A layer between ``kube`` and ``reconcile``: ``offsets`` and ``status`` are pure (parse MM2's
Connect offsets records, compute lag, fold it into CheckoutRegion status); ``lag`` does the Kafka
I/O (aiokafka); ``metrics`` exports the gauges.
"""
