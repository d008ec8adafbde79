"""Prometheus metrics: event instruments recorded where things happen, queue state read from
Redis at scrape time."""
