"""`envtune report`: curves, stage decisions, a rollout viewer and eval tables in one HTML file."""

MAX_CONVERSATIONS = 500  # per directory: a paper-scale run or a 3-sample held-out eval stays a file to mail
