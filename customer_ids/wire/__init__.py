"""What travels on the wire: the Avro codec and the header names with their meaning."""
