"""`customer-ids api`: the HTTP lookup API and the support page (README, "The lookup API")."""

from customer_ids.tools.api.server import print_new_token, run_api

__all__ = ["print_new_token", "run_api"]
