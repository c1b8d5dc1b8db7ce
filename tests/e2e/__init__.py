"""The commands as a user runs them: the CLI (or its scripts) against the local servers."""
