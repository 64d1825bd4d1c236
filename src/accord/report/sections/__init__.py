"""The report's sections, one module each; every module's ``build(ctx)`` returns a `Section`."""
