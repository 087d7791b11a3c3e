"""Operator tools behind the CLI: what an operator runs by hand against a deployment (the
DLQ, ``secops analyze`` and ``send``, rules explain) and what they read (inputs, message
keys, shifted timestamps, synthetic WAF log files)."""
