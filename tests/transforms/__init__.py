"""The public PTransforms of `transforms/`, each in a small pipeline on the local runner."""
