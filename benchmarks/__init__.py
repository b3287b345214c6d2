"""Benchmarks of escalator's hot paths against their limits (issue 8).

Run ``.venv/bin/python -m benchmarks`` (``--quick`` for a smoke run with tiny
sizes, ``--write`` to regenerate ``benchmarks/RESULTS.rst``).  Each benchmark
measures the escalator and a baseline side by side in the same run and
reports medians and their ratio.  Nothing here is imported by the package
or the test suite's timing: the benchmark reports, the README quotes.
"""
