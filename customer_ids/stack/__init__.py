"""The local stack: a genuine Apache Kafka broker (KRaft, jars from Maven Central) and redis-server.

It exists because the machines that build and test customer-ids have no Docker engine.
"""
