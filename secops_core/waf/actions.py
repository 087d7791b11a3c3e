"""WAF actions: the one home of every action set (docs/architecture.md, "Severity").

A native WAF log says ``ALLOW``, ``BLOCK``, ``COUNT``, ``CAPTCHA`` or ``CHALLENGE``; a
rule inside a group that was excluded or overridden says ``EXCLUDED_AS_COUNT``.
"""

from __future__ import annotations

KNOWN_ACTIONS = frozenset({"ALLOW", "BLOCK", "COUNT", "CAPTCHA", "CHALLENGE"})
# Spellings seen in hand-written and third-party exports of WAF events.
ACTION_ALIASES = {"BLOCKED": "BLOCK", "ALLOWED": "ALLOW", "COUNTED": "COUNT", "DENY": "BLOCK"}

# The request went on to the application.
REACHED_ACTIONS = frozenset({"ALLOW", "COUNT"})
# A rule matched without acting: counted, or excluded from its group's action.
COUNTED_ACTIONS = frozenset({"COUNT", "EXCLUDED_AS_COUNT"})
# The client got an interstitial instead of the application.
INTERSTITIAL_ACTIONS = frozenset({"CAPTCHA", "CHALLENGE"})
# A terminating match that kept the request from the application.
INTERRUPTING_ACTIONS = frozenset({"BLOCK", *INTERSTITIAL_ACTIONS})
