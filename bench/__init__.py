"""Benchmarks for flux-ui against its local emulator (issue 5); run ``python -m bench.run``.

These are not tests: they report medians and ratios against a baseline measured in the same
run. ``tests/test_bench_smoke.py`` runs each in quick mode so they cannot rot.
"""
