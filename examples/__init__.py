"""Worked examples of what users build on ATM's data."""
