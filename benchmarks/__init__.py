"""Benchmarks (`make bench`): reported as ratios against the cost of importing the SDKs."""
