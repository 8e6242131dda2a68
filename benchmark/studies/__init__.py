"""Studies built on runs: the headline protocol, diagnostics, chains, synthesis, unlabelled
data, and the CI regression check."""
