"""The launcher: the CLI, the run config, the table step, and one module per pipeline
(bulk, validate, replicate) that assembles `transforms` into a Beam pipeline and runs it.
Nothing here runs on a worker."""
