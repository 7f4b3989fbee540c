"""Configuration: every setting declared once (settings.py) and the sequences file (TOML)."""
