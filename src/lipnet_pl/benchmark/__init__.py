"""Benchmarks: timing/memory primitives, one runner per case, the report, and the suite behind
``make bench`` (:mod:`.suite`)."""
