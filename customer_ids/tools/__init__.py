"""Commands beside the service, under the CLI: lookup, dead letters, tail."""
