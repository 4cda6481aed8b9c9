"""Real servers and test data that the suite starts for itself."""
