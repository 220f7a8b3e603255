"""`kubeshore up` / `kubeshore down`: run the whole platform on one machine (see docs/quickstart.md)."""
