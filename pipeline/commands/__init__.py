"""One module a command: `bulk` (`migrate`), `capture` (the change spool during a copy, and
`capture`), `replicate`, `validate`, `repair` (`validate --repair`), `retry_dead_letters`,
`parquet_export` (`export`), `dry_run` (`--dry-run`), `status`."""
