"""What every stage shares: the data contract, errors, file writing, logs and privacy rules.

Nothing here imports a stage. ``contract`` is the interface between stages (the four input
tables as pandera models); ``io`` is the one writer of outputs (atomic, byte-identical);
``stages`` reads an earlier stage's files; ``identifiers`` and ``personal_names`` say what an
identifier looks like and how to withhold it from a message; ``disclosure`` is the small-cell
rule for every published number; ``errors`` and ``logs`` are the messages a researcher sees.
"""
