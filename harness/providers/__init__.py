"""One module per wire protocol: ollama, openai_compat, anthropic."""
