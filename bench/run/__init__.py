"""Running an experiment: the stages (preflight -> generate -> score -> report), the run directory, its lock and provenance, and the command line's error handling."""
