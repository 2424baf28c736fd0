"""eval layer of adaptau (see docs/ARCHITECTURE.md)."""
