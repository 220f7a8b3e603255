"""dmi package."""
