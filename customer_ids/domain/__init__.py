"""Pure rules with no I/O: events, check digits, number templates, scrambling, sequences,
validation, number spaces, and the project's error types. Imports nothing else of the project."""
