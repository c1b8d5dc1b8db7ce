"""Talking to DynamoDB-API endpoints (DynamoDB, DynamoDB Local, Alternator): endpoint specs
and clients, the event loop a DoFn owns them on, which failures are retried and how,
token-bucket rates, consistent point reads, and the one writer every path writes through."""
