"""The launcher's modules on their own: config, runner options, the local runner, schema."""
