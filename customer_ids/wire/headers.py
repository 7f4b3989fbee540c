"""Names shared by the service and the tools that read its topics."""

# Header on each CustomerIdAssigned record repeating "counter|value|number", so rebuilding
# Redis from the output topic needs no Avro decode.
ASSIGNMENT_HEADER = "customer_ids.assignment"

# Header with the keyed digests (never the values) a new customer's email and phone are found
# under, comma-separated, so a rebuild of Redis restores the search index too.
SEARCH_HEADER = "customer_ids.search"

# Header on a CustomerIdAssigned record that adopts a legacy CRM's number (`customer-ids
# import`): the import's id. Subscribers and the auditor tell imported assignments by it.
IMPORTED_HEADER = "customer_ids.imported"
