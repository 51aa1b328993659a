"""Training: GRPO through TRL on one machine, and the curriculum that drives its stages."""
