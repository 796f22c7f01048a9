"""LLM engines: the vLLM client, the local engine launcher, model preparation."""
