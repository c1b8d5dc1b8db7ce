"""What a run shows: lines on the terminal and in the run's log (`logs`), progress with an
ETA (`progress`), the end-of-run tables and JSON reports (`report`) of what commands hand
back (`results`), Prometheus metrics (`metrics_server`), and which figures each shows
(`figures`)."""
