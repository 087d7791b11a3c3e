"""Operator tools: what an operator runs by hand against a deployment (the DLQ today)."""
