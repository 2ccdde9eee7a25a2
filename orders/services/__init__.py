"""Every write to orders goes through these services."""
