"""The launcher: everything that runs on the machine a command is started on, never on a worker.

By role (a command's code is in the module named after it):

- the console and its output: `console` (the script's entry: logging and Ctrl-C first),
  `cli` (the commands and their options), `logs`, `progress`, `report` (the summaries),
  `metrics_server`, `status`;
- the checks before a run: `config` (the YAML file), `runner` and `engines` (Beam options and
  what a runner can do), `storage` (the state's bucket or folder), `tables` and `schema`
  (describe, plan, create the target tables), `exports` (DynamoDB export manifests),
  `rollback` (can a table on Alternator stream back);
- the commands: `bulk` (`migrate`), `capture` (the change spool during a copy, and `capture`),
  `replicate`, `validate`, `repair` (`validate --repair`), `retry_dead_letters`,
  `parquet_export` (`export`), `dry_run` (`--dry-run`).

The Beam transforms and the clients they use are in `transforms/`, which imports nothing from here.
"""
