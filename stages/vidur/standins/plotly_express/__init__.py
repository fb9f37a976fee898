"""gsim's stand-in for the `plotly_express` package: the old standalone name
of what plotly ships as `plotly.express` (Debian: python3-plotly). Vidur
imports it under the old name; this forwards to plotly's own module. It is
used only when the standalone package is not installed."""

from plotly.express import *  # noqa: F401,F403
