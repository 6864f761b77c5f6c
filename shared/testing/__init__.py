"""Testing helpers for Lamson applications."""
