"""The TRL engine: each curriculum stage as GRPO through TRL's `GRPOTrainer` on one machine."""
