"""Training: feature cache, one-fold loop, the cross-validation + external protocol, runs."""
