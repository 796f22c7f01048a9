"""Ingest: loaders, chunking, and the pipeline that fills the vector store.

Entry points live in ``ingest.pipeline`` (``ingest_paths``, ``ingest_file``,
``ingest_documents``, ``list_documents``, ``delete_document``).
"""
