"""Customer protection: complaints, hardship requests, personal-data encryption, log redaction."""
