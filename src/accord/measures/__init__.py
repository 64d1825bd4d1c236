"""Stage 3, rules ``score_measures`` and ``build_measures``: scores, measures and the panel.

``score_measures`` reads ``validated/measures.parquet`` and ``goals.parquet`` and writes
``scores.parquet`` (one row per client, session and instrument, scored by the `instruments`
registry through `scoring`) and ``reliability.csv`` (`reliability`); a study validated in
partitions of clients is scored in them (``score_partition``, `partitions`) and gathered to the
same bytes. ``build_measures`` adds the validated clients and sessions and writes
``client_measures.parquet`` and ``session_panel.parquet`` (`build`, from `panel`, `engagement`,
`alliance`, `goalsetting` and `change`) with ``measures_metadata.json`` recording every scoring
choice; a study in partitions builds them in its partitions (``measures_statistics`` and
``build_partition``, `build_parts`), with the few numbers taken over all clients added up
exactly (`statistics`, `exact`), and gathers them to the same bytes.
"""
