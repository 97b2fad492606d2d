"""docextract: validated JSON from KYC documents, bank statements and invoices, on your own GPU."""

__version__ = "0.1.0"
