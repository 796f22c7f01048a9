"""ragserve as a Ray Serve application: gateway replicas, a batched retrieval deployment, and
vLLM engine replicas placed by Ray (``deploy/ray/serve.yaml``; run with ``python -m serving``)."""
