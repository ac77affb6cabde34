"""Benchmarks of the engine: local throughput and a remote server's."""
