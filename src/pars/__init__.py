"""PARS: prompt-aware request scheduling for vLLM with a pairwise learning-to-rank length ranker."""

__version__ = "0.1.0"
