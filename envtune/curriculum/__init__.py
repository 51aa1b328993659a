"""The curriculum, whatever trains it: stage configs and presets, the transition rule, and the run
that takes the stages in order, hands checkpoints on and resumes. Engines train the stages: TRL on
one machine (`envtune.train`), veRL on a cluster (`envtune.verl`)."""
