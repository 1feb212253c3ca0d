"""Benchmarks and their reference implementations (reference decoder, ground-truth renderer).

Benchmarks print a table and write JSON; they may read ../shared/data, the runtime never does.
"""
