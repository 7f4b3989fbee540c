"""Adapters over the outside world shared by the service and the tools: Kafka client config and
topics, reading topics to their end, Redis key names, logging."""
