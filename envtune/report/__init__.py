"""`envtune report`: curves, stage decisions, a rollout viewer and eval tables in one HTML file."""
