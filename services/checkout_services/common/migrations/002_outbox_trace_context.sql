-- W3C trace context (traceparent, tracestate) of the transaction that wrote the event, when
-- tracing is on: the relay publishes the event under it, so the Kafka record joins the trace.
ALTER TABLE outbox ADD COLUMN trace_context jsonb;
