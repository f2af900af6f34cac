"""ckpp data toolkit: CK+/CK++ ingestion, landmarks, quality checks, HDF5 shards.

This package never imports torch, so `ckpp prepare` stays light and fork-safe.
"""
__version__ = "0.1.0"
