"""kubeapi package."""
