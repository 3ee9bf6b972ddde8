"""Data generators, one module per domain; importing the package registers every API."""

from atm_assets.sandbox.generators import bars, financials, indices, listing, market, reference

__all__ = ["bars", "financials", "indices", "listing", "market", "reference"]
