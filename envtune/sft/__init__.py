"""`envtune sft`: supervised fine-tuning on the oracle's episodes of a training split, rendered token
for token as the rollout engine renders RL episodes (a warm start, and the SFT baseline)."""
