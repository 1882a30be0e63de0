"""Webhooks: subscriptions, a transactional outbox, signed deliveries with retries, a delivery log."""
