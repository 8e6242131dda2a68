"""Records of runs: the run store (cells, outcomes, partial batches) and scoring."""
