"""Retrieval: embeddings, sparse vectors, Qdrant stores, hybrid search."""
