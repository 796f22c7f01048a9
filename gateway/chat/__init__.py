"""POST /v1/chat/completions: routes (HTTP), service (logic), protocol (wire types)."""
