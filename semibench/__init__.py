"""semibench."""
