"""`python -m customer_ids.tools.api [--host H] [--port P]`: the API without the CLI, for tests
and the load script (the CLI's `customer-ids api` calls the same run_api)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from customer_ids.adapters.logs import configure_logging
from customer_ids.config.api_settings import ApiSettings
from customer_ids.config.settings import Settings
from customer_ids.domain.errors import ConfigError
from customer_ids.tools.api.server import run_api


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m customer_ids.tools.api")
    parser.add_argument("--host", help="listen address (default: CUSTOMER_IDS_API_HOST)")
    parser.add_argument("--port", type=int, help="port (default: CUSTOMER_IDS_API_PORT)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        api_settings = ApiSettings.from_env()
        configure_logging(settings.log_format, settings.log_level)
        host = args.host or api_settings.host
        port = api_settings.port if args.port is None else args.port
        return run_api(settings, api_settings, host, port)
    except ConfigError as exc:
        print(f"customer-ids api: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
