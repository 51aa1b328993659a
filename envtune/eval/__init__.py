"""Evaluation: any model on BFCL multi-turn with official-parity verdicts."""
