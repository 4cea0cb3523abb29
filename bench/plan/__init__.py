"""What a run is: the config schemas and overrides, the prompt sets, the protocol (which clips), the shards and the methods from one's own checkpoints."""
