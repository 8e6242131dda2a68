"""Runs: what a run evaluates, its executor over model objects, per-batch seeding, sharding."""
