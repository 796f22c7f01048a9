"""POST /v1/search and the collections routes: retrieval without generation."""
