"""POST /v1/embeddings over the same embedder retrieval uses."""
