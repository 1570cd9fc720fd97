"""In-process adapters: the embedded defaults used when no external service is configured."""
