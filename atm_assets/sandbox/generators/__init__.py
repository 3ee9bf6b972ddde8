"""Data generators, one module per domain; importing the package registers every API."""

from atm_assets.sandbox.generators import bars, listing, market

__all__ = ["bars", "listing", "market"]
