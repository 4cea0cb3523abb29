"""Making the clips: the generation runner and the crash-safe clip store."""
