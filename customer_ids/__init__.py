"""customer-ids: one permanent customer number per customer, handed out exactly once."""
