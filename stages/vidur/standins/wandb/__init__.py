"""gsim's stand-in for the `wandb` package, for running Vidur offline.

Vidur imports wandb at module level and logs to it only when a run is
active (`wandb.run` set by `wandb.init`, which Vidur calls only when a
wandb project is configured; gsim never configures one). This module
keeps `wandb.run` None and accepts and drops every call Vidur makes.
It is used only when the real wandb is not installed.
"""

run = None


def init(*args, **kwargs):
    """Vidur calls this only with a wandb project set; gsim sets none."""
    return None


def log(*args, **kwargs):
    return None


def finish(*args, **kwargs):
    return None


class Table:
    """Holds what it was given and nothing else."""

    def __init__(self, *args, dataframe=None, **kwargs):
        self.dataframe = dataframe


class _Plot:
    @staticmethod
    def line(*args, **kwargs):
        return None

    @staticmethod
    def bar(*args, **kwargs):
        return None

    @staticmethod
    def histogram(*args, **kwargs):
        return None


plot = _Plot()
