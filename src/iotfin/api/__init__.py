"""HTTP API (FastAPI): one router per context, problem+json errors."""
