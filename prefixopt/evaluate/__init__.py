"""Held-out evaluation: which questions, which prefixes, the comparisons and their statistics."""
