"""The linear mixed-model engine shared by the model kinds (growth, lagged, therapist, LRT).

`lmm` fits lme4's profiled (RE)ML formulation and certifies the optimum it reaches; the kinds
build their design matrices and read their estimates from its `LmmFit`.
"""
