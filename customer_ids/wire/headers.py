"""Names shared by the service and the tools that read its topics."""

# Header on each CustomerIdAssigned record repeating "counter|value|number", so rebuilding
# Redis from the output topic needs no Avro decode.
ASSIGNMENT_HEADER = "customer_ids.assignment"
