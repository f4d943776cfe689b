"""Pure scoring functions: each takes predictions and references and returns numbers."""
