"""Named weights: what ofa-edge knows how to find or fetch (registry), where fetched files live
(cache), and the download itself (fetch)."""

from .registry import REGISTRY, WeightsEntry, get_entry, is_registered

__all__ = ["REGISTRY", "WeightsEntry", "get_entry", "is_registered"]
