"""Message sources and the source-neutral dispatcher that consumes them (see ``source.py``)."""
