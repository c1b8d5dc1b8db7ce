"""DynamoDB exports in S3 as a source: their manifests, and their data files read into pages."""
