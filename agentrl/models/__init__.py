"""Small models agentrl builds itself: for tests, the quick start and (later) the default."""
