"""The launcher: everything that runs on the machine a command is started on, never on a worker.

By role: `console` (the script's entry: logging and Ctrl-C first) and `cli` (the commands
and their options) at the door, then three rooms:

- `output`: what a run shows (terminal and log lines, progress, reports, metrics);
- `checks`: what is settled before a run changes anything (config, runner options,
  buckets, tables and schema, the source streams, export manifests, a rollback's streams,
  a dry run's offline job);
- `commands`: one module a command (a command's code is in the module named after it;
  no command imports another).

The Beam transforms and the clients they use are in `transforms/`, which imports nothing from here.
"""
