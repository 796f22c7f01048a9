"""Ingest: loaders, chunking, and the run that fills the vector store.

``ingest.pipeline.ingest_paths`` runs an ingest into a target (``ingest.targets``): the
store opened in this process, or a running gateway.
"""
