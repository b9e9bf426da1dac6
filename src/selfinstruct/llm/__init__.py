"""How requests reach a model: the client (cache, retries, budget), transport, flow control,
prices, the Batch API files. Nothing is imported here: importing it does not import openai."""
