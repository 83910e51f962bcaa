"""Tests against a real `pf-webhook serve` process over HTTPS (see conftest.py)."""
