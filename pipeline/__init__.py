"""The launcher side: CLI, config, and one module per pipeline (bulk, validate, replicate)."""
import logging


class _QuietBeamImport(logging.Filter):
    """Beam warns at import that optional GCP libraries are absent; that is expected here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "apitools not found" not in record.getMessage()


logging.getLogger().addFilter(_QuietBeamImport())
