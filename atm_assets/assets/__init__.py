"""Software-defined assets of ATM."""
