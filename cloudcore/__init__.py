"""cloudcore package."""
