"""coop-bench: a reproducible pipeline for CoOp."""
__version__ = "0.2.0"
