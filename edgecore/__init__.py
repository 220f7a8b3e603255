"""edgecore package."""
