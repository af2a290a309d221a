"""Generating datasets: shards rendered by a pool of spawned workers or by Ray actors, merged into
one file, resumable after a crash or Ctrl-C; and the planner that sizes a run before it starts."""
