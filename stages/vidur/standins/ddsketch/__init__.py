"""gsim's stand-in for the `ddsketch` package (see ddsketch.py here)."""

from .ddsketch import DDSketch  # noqa: F401
