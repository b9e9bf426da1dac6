"""The Self-Instruct method's pure parts: prompts, parsing of replies, filters, ROUGE-L."""
