"""Shared test helpers: where the services are, the service as a subprocess, the verifier."""
