"""Getting invite links to claimants: channels (outbox, SMTP, SMS gateway) and a durable retry queue."""
