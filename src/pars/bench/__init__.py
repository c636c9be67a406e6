"""Benchmarks: ranking quality of the predictors, and serving latency on a real vLLM engine."""
