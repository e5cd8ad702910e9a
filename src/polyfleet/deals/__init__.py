"""Commitment deals under uncertainty: should we sign? (``docs/deals.md``).

``deals.spec`` holds the ``deals:`` and ``uncertainty:`` sections of a spec (imported by
``polyfleet.spec``, so it imports nothing of polyfleet's); ``deals.problem`` builds the
second-stage LP of one scenario, ``deals.benders`` solves the two-stage problem by sample
average approximation, ``deals.analysis`` answers the questions ``polyfleet deal`` prints.
"""
