"""The local servers that stand in for AWS and ScyllaDB, and the data seeded into them: what the
tests, `make bench` and `make demo` run against. Not part of the installed package."""
