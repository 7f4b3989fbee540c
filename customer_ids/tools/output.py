"""How the commands print what they found, one convention for all: a table for people, one
JSON object a line with `--json` for scripts (the same keys as the table's columns)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

Column = tuple[str, str]  # key in the row, header shown


def print_rows(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    *,
    as_json: bool,
) -> None:
    """The rows as a table on stdout, or as JSON lines with `as_json`."""
    if as_json:
        for row in rows:
            print(json.dumps(dict(row), default=str))
        return
    table = Table(show_lines=False)
    for _, header in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        # Text, never markup: an id such as "acme[eu]" or ":thumbs_up:" is shown as it is.
        table.add_row(*(Text(_cell(row.get(key))) for key, _ in columns))
    # Not a terminal (a pipe, a file): no colours, and wide enough not to fold every cell.
    console = Console(
        highlight=False, markup=False, emoji=False, width=None if sys.stdout.isatty() else 160
    )
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
