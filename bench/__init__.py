"""The throughput benchmark of the worker: ``python -m bench.run`` (``make bench``)."""
