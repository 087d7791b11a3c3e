"""The embedded default (``secops demo``, ``make run``): moto's server in-process
(:mod:`.moto`), the demo and its steps, and the bundled samples.

Needs the ``embedded`` extra (moto) and is left out of the worker image; the benchmarks,
the fault-injection runs and the tests use it from a source checkout.
"""
