"""Ingest: loaders, chunking, and the pipeline that fills the vector store."""
