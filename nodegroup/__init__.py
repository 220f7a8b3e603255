"""nodegroup package."""
