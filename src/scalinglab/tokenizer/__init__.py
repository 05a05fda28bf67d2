"""Tokenizer lab: byte-level BPE and Jurassic-1-style multi-word BPE, and their comparison."""
