"""The HTTP gateway: OpenAI-compatible routes, SSE, errors, and the RAG pipeline."""
