# The customer-ids service image: one console script, `customer-ids`, with every subcommand.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY stack ./stack
COPY customer_ids ./customer_ids
COPY consumer ./consumer
COPY producer ./producer
RUN pip install --no-cache-dir .
USER nobody
ENV CUSTOMER_IDS_LOG_FORMAT=json
EXPOSE 9400
ENTRYPOINT ["customer-ids"]
CMD ["serve"]
