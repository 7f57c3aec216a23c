"""accountants: mechanism descriptions, privacy accountants, secure noise and a privacy ledger."""

from __future__ import annotations

__all__: list[str] = []
