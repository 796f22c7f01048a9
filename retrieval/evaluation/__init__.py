"""Retrieval evaluation on BEIR-format datasets: loading, metrics, and the evaluation run."""
