"""The customer-ids service: a Kafka consumer group that assigns customer numbers exactly once."""
