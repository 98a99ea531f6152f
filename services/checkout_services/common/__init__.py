"""Shared pieces of the checkout services: config models, and later db, kafka, errors, health."""
