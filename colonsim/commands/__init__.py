"""The ``colonsim`` subcommands of the forward model (mesh, render, inspect, preview, tune, plan):
argument parsing and one library call each."""
