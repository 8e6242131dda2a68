"""The performance suite: fast paths timed against their references in one run."""
