"""Layer 6, the `audiolm` command line: `app.main` builds the parser from the command modules here.

Command modules import only argparse (and cheap config modules) at top level; they import torch
and friends inside their run functions so `audiolm --help` stays fast."""

from audiolm.cli.app import main

__all__ = ["main"]
