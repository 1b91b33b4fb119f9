"""Helpers for testing code built on ocpp_trio: in-memory pairs and hypothesis strategies."""

from ._pair import open_memory_pair as open_memory_pair

__all__ = ["open_memory_pair"]
