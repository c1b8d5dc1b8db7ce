"""What is settled before a run changes anything: the YAML file (`config`), Beam's options
checked and a pipeline launched (`launch`), what each runner can do (`runners`), the state's
bucket or folder (`buckets`), the tables (`tables`, `schema`: describe, plan, create), the
stream each table's changes are read from (`source_streams`: found, switched on, tied to the
checkpoints), DynamoDB export manifests (`dynamodb_exports`), and whether an Alternator
table can stream back (`rollback`)."""
