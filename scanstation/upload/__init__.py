"""Upload: the durable queue that sends sealed packages to the portal (tus) and checks its signed receipts."""
