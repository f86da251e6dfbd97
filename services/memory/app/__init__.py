"""Sophia AI memory service."""
