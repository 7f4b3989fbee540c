"""The upstream side: emit CustomerCreated events the way customer-ids expects them.

from producer import CustomerEventProducer
with CustomerEventProducer("127.0.0.1:19092") as events:
    events.emit(customer_id="42", source_system="shop", customer_type="INDIVIDUAL",
                country_code="DE")
"""

from producer.emitter import CustomerEventProducer

__all__ = ["CustomerEventProducer"]
