"""One module (or package) a command: `bulk` (`migrate`), `capture` (the change spool during
a copy, and `capture`), `replicate` (a package: one module a way of running), `validate`,
`repair` (`validate --repair`), `retry_dead_letters`, `parquet_export` (`export`), `status`.
Each reads on its own: no command imports another. What two of them share has a module of
its own: `source_reads` (the source read again, which `repair` and `retry_dead_letters`
decide from); what is settled before any of them runs is in `checks` (the stream step,
`--dry-run`'s offline build), and what they hand back to be shown in `output.results`."""
