"""Static analysis of notebook code: never executes it."""
