"""Response actions: an incident's source blocked in a WAF IP set for a bounded time
(docs/architecture.md, "Response actions").

- :mod:`.addresses`: the allowlist and what exactly is written for an address (pure);
- :mod:`.records`: block records, their audit trail, IP set references (pure);
- :mod:`.policy`: which incidents are blocked, for how long;
- :mod:`.blocker`: block, unblock, expire, reconcile, in the order that survives crashes;
- :mod:`.ipset`: the read-merge-write-read-back edit every IP set backend shares;
- :mod:`.wafv2` and :mod:`.memory`: IP set backends; :mod:`.dynamodb` and :mod:`.memory`:
  block record backends;
- :mod:`.expiry`: the scheduler's pass, once per slot across replicas.
"""
