"""SQS consumption: polling, leases, heartbeats, acks, circuit breaking, shutdown."""
