"""End-to-end pipelines that chain the stages (data -> tokenizer -> sweep -> fit -> report).

The top floor below the command line: a pipeline may import any stage, and no stage imports
a pipeline. ``demo`` is the README's small study on the bundled corpus.
"""
