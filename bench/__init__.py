"""lcmbench harness: protocol, runner, clip store and the Hydra configs."""
