"""Helpers the tests, the benchmarks (``bench/``) and the fault-injection runs
(``chaos/``) share: a scripted Strands model (:mod:`testkit.scripted_model`) and
builders of WAF events in every input shape (:mod:`testkit.events`).

A package of its own so that ``bench`` and ``chaos`` do not import ``tests``; neither
image ships it.
"""
