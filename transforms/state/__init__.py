"""What a run leaves on disk (a local folder, s3:// or gs://, through Beam's FileSystems):
bulk checkpoints, stream checkpoints and stop notes, and dead letters. Files are written
whole or not at all, so a killed run never leaves half a file."""
