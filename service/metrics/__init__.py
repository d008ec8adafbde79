"""Prometheus metrics: the event instruments, the table collector and the multiprocess registry.

This package sits below :mod:`service.dispatch`: dispatch records item events into
:mod:`~service.metrics.instruments`, and the collector that reads queue state from Redis at
scrape time lives with the Redis layout it reads (:mod:`service.dispatch.collector`).
"""
