"""privval: differentially private data valuation with rigorous privacy accounting."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
