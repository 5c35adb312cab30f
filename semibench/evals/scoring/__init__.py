"""Scores from existing judge outputs: AlpacaEval 2.0 win rates and Arena-Hard-Auto v0.1 Bradley–Terry scores."""
