"""Training: the one-fold loop, the cross-validation + external protocol, and the run."""
