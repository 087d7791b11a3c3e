"""The per-message pipeline: parse, claim, analyze, triage, notify (docs/architecture.md)."""
