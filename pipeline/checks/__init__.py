"""What is settled before a run changes anything: the YAML file (`config`), Beam's options
checked and a pipeline launched (`launch`), what each runner can do (`runners`), the state's bucket or folder
(`buckets`), the tables (`tables`, `schema`: describe, plan, create), DynamoDB export
manifests (`dynamodb_exports`), and whether an Alternator table can stream back (`rollback`)."""
