"""Questions about the sample corpus (``ingest/samples``): RAG finds an answer to each."""

QUESTIONS = (
    "What does error HX-7731 mean?",
    "How many events per second can one collector ingest?",
    "How long are raw readings kept?",
    "What is the support mascot called?",
    "Which release introduced delta compression?",
    "How much does the Fleet plan cost?",
    "Who founded Brightwater Instruments?",
    "How long does a gateway buffer readings offline?",
)
