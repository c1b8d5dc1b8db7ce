"""One module a command: `bulk` (`migrate`), `capture` (the change spool during a copy, and
`capture`), `replicate`, `validate`, `repair` (`validate --repair`), `retry_dead_letters`,
`parquet_export` (`export`), `dry_run` (`--dry-run`), `status`. No command imports another;
what two of them share has a module of its own: `source_reads` (the source read again,
which `repair` and `retry_dead_letters` decide from)."""
