"""Interoperability with Hugging Face ``transformers``: export a run as a stock
``LlamaForCausalLM`` / ``GPT2LMHeadModel`` directory and import one back (extra ``hf``).

Sits beside ``eval`` in the package order (it reads runs through ``eval.model_io`` and
``eval.tokenizer``); ``layouts`` is the one owner of the parameter-name and shape mappings.
"""
