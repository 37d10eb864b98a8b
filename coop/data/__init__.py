"""Datasets on disk, the few-shot sampler and manifests (no torch imports here)."""
