"""The Redis number store (counters, the customer map, locks and the checks that keep them
honest), shared by the service and the tools that read it (lookup, the API, the auditor)."""
