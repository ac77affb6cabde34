"""prefixopt: learn which "You are <notable person>." system prompt helps an LLM on a benchmark.

Importing this package is cheap on purpose: no vllm, torch or transformers here.
"""

__version__ = "0.1.0"
