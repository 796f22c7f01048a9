"""The RAG stages the gateway runs around generation: query, prompt, citations."""
