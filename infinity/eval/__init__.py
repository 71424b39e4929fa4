"""Evaluation helpers: a pixel-reading checker for the synthetic scene prompts."""

from infinity.eval.checker import analyze, check, score

__all__ = ["analyze", "check", "score"]
