"""Sophia AI orchestrator service."""
